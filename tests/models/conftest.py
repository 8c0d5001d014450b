"""Fixtures for the model tests: the built-in detectors, loaded once per module."""

from __future__ import annotations

import pytest

from models.detector import Detector
from models.registry import builtin_spec


@pytest.fixture(scope="module")
def ct_model() -> Detector:
    return builtin_spec("ct-hemorrhage").load("cpu")


@pytest.fixture(scope="module")
def cxr_model() -> Detector:
    return builtin_spec("cxr-pneumothorax").load("cpu")
