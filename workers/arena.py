"""The C allocator settings of a process that analyses: one arena for every thread, and freed memory kept.

glibc gives each new thread an arena of its own, grown in heaps of at most 64 MB that are trimmed as arrays are
freed, so the model's arrays were faulted in afresh on every study. ct-hemorrhage 0.5.2 on a 300 x 512 x 512 CT,
one process, 7 runs alternating between the main thread and a long-lived thread (2-core VM): medians 1.95 s and
2.71 s, about 300 and 99,000 page faults per call; with one arena, 2.25 s and 2.02 s, about 800 faults each.

Even from one arena, glibc maps every block over 32 MB apart and unmaps it when it is freed, and trims the top of
the heap: the model's large temporaries went back to the kernel after each study and came back as page faults,
each a zeroed page and, on a virtual machine whose host takes freed memory back (free page reporting), a fault
on the host too. ct-hemorrhage 0.5.4 in the node on that VM, 3 studies of 300 slices: 21,000-23,000 faults and
0.12-0.42 s of kernel time per call (the call 1.27-1.56 s); with freed memory kept, no fault and no kernel time
after the first study (1.15-1.20 s). The price: the process keeps the memory of its largest study (the node
after 4 to 16 such studies: RSS 1.18-1.34 GB, not growing; without, 1.11 GB and a peak of 1.27 GB);
`analysis.keep_memory = false` gives it back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# glibc malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes: the heap is trimmed only when 2 GB lie free at its top


def share_main_arena() -> bool:
    """Threads that first allocate after this call use the main arena. Call it before the analysis threads start;
    glibc only (elsewhere nothing changes and False is returned)."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(M_ARENA_MAX, 1) == 1


def keep_freed_memory() -> bool:
    """From now on freed memory stays with the process for the next study: no block is mapped apart (so none is
    unmapped when freed) and the heap is not trimmed. glibc only (elsewhere False)."""
    mallopt = _mallopt()
    return mallopt is not None and mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1


def _mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt: the C allocator keeps its defaults")
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt
