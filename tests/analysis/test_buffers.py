"""A worker thread's volume memory is reused only when no volume built on it is alive."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from dicomnode.analysis import buffers
from dicomnode.analysis.buffers import volume_array


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    """Each test starts with no memory kept by this thread (earlier tests loaded volumes in it)."""
    buffers._kept.array = None
    yield
    buffers._kept.array = None


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def test_a_volume_that_is_gone_gives_its_memory_to_the_next_one() -> None:
    first = volume_array((4, 5, 6))
    address = _address(first)
    del first
    smaller = volume_array((3, 5, 6))
    assert _address(smaller) == address and smaller.shape == (3, 5, 6)
    del smaller
    larger = volume_array((5, 5, 6))
    assert _address(larger) != address and larger.shape == (5, 5, 6), "too small to reuse: a new array"


def test_memory_in_use_is_never_handed_out_again() -> None:
    first = volume_array((4, 5, 6))
    second = volume_array((4, 5, 6))
    assert _address(second) != _address(first), "the first volume is alive"
    del first, second

    volume = volume_array((4, 5, 6))
    kept = _address(volume)
    one_slice = volume[1]  # a view of one slice keeps the whole array in use
    del volume
    assert _address(volume_array((4, 5, 6))) != kept
    del one_slice

    volume = volume_array((4, 5, 6))
    kept = _address(volume)
    tensor = torch.from_numpy(volume)  # and so does a model's tensor on it
    del volume
    assert _address(volume_array((4, 5, 6))) != kept
    del tensor


def test_threads_never_share_memory() -> None:
    held: list[np.ndarray] = []
    lock = threading.Lock()

    def take() -> None:
        array = volume_array((4, 5, 6))
        with lock:
            held.append(array)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({_address(a) for a in held}) == 4
