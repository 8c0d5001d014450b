"""A worker thread's volume memory, reused from one study to the next.

Fresh memory costs the kernel a page fault and a zeroed page per 4 KB (or 2 MB) on first touch; on a virtual
machine whose host takes freed memory back (free page reporting, ballooning) each of those is also a fault on
the host. A 300 x 512 x 512 CT is 315 MB of float32: allocating it anew took 0.3-0.6 s of kernel time per study
on our 2-core VM, more than reading the 300 files. A thread keeps the array of its last volume and hands it out
again once nothing else holds it; the memory stays with the worker between studies.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

_kept = threading.local()


def volume_array(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array of `shape`: this thread's kept memory when it is large enough and nothing
    references it any more (the caller must write every element), else a new allocation kept for next time."""
    size = int(np.prod(shape))
    kept: np.ndarray | None = getattr(_kept, "array", None)
    # CPython counts the thread's reference, `kept`, getrefcount's argument, and one per view handed out
    # earlier (a view holds its base): 3 means every volume built on it is gone.
    if kept is not None and kept.size >= size and sys.getrefcount(kept) == 3:
        return kept[:size].reshape(shape)
    _kept.array = None  # let a kept array nobody uses go before allocating its successor
    _kept.array = np.empty(size, dtype=np.float32)
    return _kept.array.reshape(shape)
