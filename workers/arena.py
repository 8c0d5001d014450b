"""One C allocator arena for the whole process, so that analysis threads allocate as fast as the main thread.

glibc gives each new thread an arena of its own, grown in heaps of at most 64 MB that are trimmed as arrays are
freed, so the model's arrays were faulted in afresh on every study. ct-hemorrhage 0.5.2 on a 300 x 512 x 512 CT,
one process, 7 runs alternating between the main thread and a long-lived thread (2-core VM): medians 1.95 s and
2.71 s, about 300 and 99,000 page faults per call; with one arena, 2.25 s and 2.02 s, about 800 faults each.
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
