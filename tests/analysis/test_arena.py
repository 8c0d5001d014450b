"""The C allocator settings of an analysing process (workers/arena.py). Embedded analysis threads allocate from the
main arena: without it, glibc gives each thread an arena of its own, whose heaps are trimmed and refaulted as the
model's arrays come and go. And freed memory stays with the process: without it, glibc unmaps every block over
32 MB as soon as it is freed, and the next study faults it in again."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: a thread allocates, then glibc reports its arenas (malloc_info writes one <heap> each).
_ARENAS = """
import ctypes, sys, tempfile, threading
from workers.arena import share_main_arena
if sys.argv[1] == "shared":
    assert share_main_arena()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
def allocate():
    block = libc.malloc(1 << 20)
    ctypes.memset(block, 1, 1 << 20)
thread = threading.Thread(target=allocate)
thread.start()
thread.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(out.name).read().count("<heap nr="))
"""

# In a fresh interpreter: the resident set (MB) after a 256 MB array, as large as a CT volume's, is written and freed.
_KEPT = """
import os, sys
import numpy as np
from workers.arena import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = resident_mb()
volume = np.ones(2**26, dtype=np.float32)
del volume
print(resident_mb() - before)
"""


def _run(probe: str, mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


def test_a_thread_shares_the_main_arena_after_the_call() -> None:
    assert _run(_ARENAS, "shared") == 1


def test_without_the_call_a_thread_gets_an_arena_of_its_own() -> None:
    """The control: the probe can see a second arena, so the first test's 1 is the call's doing."""
    assert _run(_ARENAS, "default") == 2


def test_freed_memory_stays_with_the_process_after_the_call() -> None:
    assert _run(_KEPT, "kept") > 200


def test_without_the_call_a_freed_volume_goes_back_to_the_kernel() -> None:
    """The control: the probe sees memory leave, so the first test's kept memory is the call's doing."""
    assert _run(_KEPT, "default") < 50
