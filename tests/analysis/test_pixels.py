"""Native pixel data read from its file offset gives exactly what pydicom decodes (every bit depth, sign and
syntax we take the fast path for), and everything else is left to pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from dicomnode.analysis.pixels import modality_values, read_instance


def instance(
    path: Path,
    values: np.ndarray,
    allocated: int,
    stored: int,
    signed: bool,
    syntax: str = ExplicitVRLittleEndian,
    slope: float = 1.0,
    intercept: float = -1024.0,
) -> Path:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "CT", values.shape[0], values.shape[1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, stored, stored - 1, int(signed)
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = values.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def reference(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


CASES = {
    "16-bit signed": (np.int16, 16, 16, True, (-2000, 3000)),
    "12-bit signed in 16": (np.int16, 16, 12, True, (-2048, 2047)),
    "12-bit unsigned in 16": (np.uint16, 16, 12, False, (0, 4095)),
    "16-bit unsigned": (np.uint16, 16, 16, False, (0, 65535)),
    "8-bit unsigned": (np.uint8, 8, 8, False, (0, 255)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_native_pixels_equal_pydicoms(case: str, syntax: str, tmp_path: Path) -> None:
    dtype, allocated, stored, signed, (low, high) = CASES[case]
    values = np.random.default_rng(3).integers(low, high + 1, (33, 47)).astype(dtype)  # odd sizes: 8-bit padding
    if stored < allocated and signed:  # 12-bit two's complement in 16 bits, the high 4 bits as a scanner writes them
        values = (values.astype(np.int32) & 0x0FFF).astype(np.uint16).view(np.int16)
    path = instance(tmp_path / "i.dcm", values, allocated, stored, signed, syntax, slope=1.5, intercept=-1024)
    header, pixels = read_instance(path)
    assert pixels is not None, "native: read from the offset"
    assert "PixelData" not in header
    assert np.array_equal(modality_values(header, pixels), reference(path))


def test_unused_high_bits_are_ignored_as_pydicom_does(tmp_path: Path) -> None:
    values = np.random.default_rng(4).integers(0, 4096, (16, 16)).astype(np.uint16) | 0xF000  # overlay bits set
    path = instance(tmp_path / "i.dcm", values, 16, 12, False)
    header, pixels = read_instance(path)
    assert pixels is not None and np.array_equal(modality_values(header, pixels), reference(path))


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, RLELossless])
def test_other_syntaxes_are_left_to_pydicom(syntax: str, tmp_path: Path) -> None:
    values = np.random.default_rng(5).integers(-1000, 2000, (20, 24)).astype(np.int16)
    path = tmp_path / "i.dcm"
    if syntax == RLELossless:
        instance(path, values, 16, 16, True)
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    else:
        instance(path, values.byteswap(), 16, 16, True, syntax)
    header, pixels = read_instance(path)
    assert pixels is None and "PixelData" in header
    assert np.array_equal(
        pydicom.pixels.apply_modality_lut(header.pixel_array, header).astype(np.float32), reference(path)
    )
