"""One C allocator arena for the whole process, so that analysis threads allocate as fast as the main thread.

glibc gives each new thread an arena of its own, grown in heaps of at most 64 MB that are trimmed and mapped
again as arrays come and go. The model's arrays of a 300 x 512 x 512 CT are refaulted page by page on every
study: 99,000 page faults and 0.5-0.8 s more per study in an analysis thread than the same model in the main
thread (bench/triage.py, 2-core VM); in the main arena, about 300 faults and the main thread's time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h


def share_main_arena() -> bool:
    """Threads that first allocate after this call use the main arena. Call it before the analysis threads start;
    glibc only (elsewhere nothing changes and False is returned)."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt: analysis threads keep their own allocator arenas")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return mallopt(M_ARENA_MAX, 1) == 1
