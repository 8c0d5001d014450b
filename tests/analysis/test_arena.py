"""Embedded analysis threads allocate from the main C allocator arena (workers/arena.py): without it, glibc gives
each thread an arena of its own, whose heaps are trimmed and refaulted as the model's arrays come and go."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: a thread allocates, then glibc reports its arenas (malloc_info writes one <heap> each).
_PROBE = """
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


def _arenas(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_thread_shares_the_main_arena_after_the_call() -> None:
    assert _arenas("shared") == 1


def test_without_the_call_a_thread_gets_an_arena_of_its_own() -> None:
    """The control: the probe can see a second arena, so the first test's 1 is the call's doing."""
    assert _arenas("default") == 2
