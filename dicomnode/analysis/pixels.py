"""The pixels of a stored native (uncompressed, little-endian) instance read straight from its file: pydicom parses
the header only (stop_before_pixels), numpy reads the Pixel Data value at its offset. A third of the time of
pydicom's full read and decode for a 300-slice CT. Anything else (compressed or big-endian syntaxes, colour,
multi-frame, float pixel data, a length that does not add up) is left to pydicom."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

PIXEL_DATA = (0x7FE0, 0x0010)
_NATIVE = {ExplicitVRLittleEndian: 12, ImplicitVRLittleEndian: 8}  # bytes before the value: tag, (VR,) length
_INTEGER = {8: "u1", 16: "<u2", 32: "<u4"}


def read_instance(path: Path) -> tuple[pydicom.Dataset, np.ndarray | None]:
    """The header and, for a native single-frame greyscale instance, its stored pixel values (as pydicom's
    pixel_array gives them); else the whole dataset, its Pixel Data included, and None."""
    with path.open("rb") as f:
        header = pydicom.dcmread(f, stop_before_pixels=True)
        offset = f.tell()
        element = f.read(12)
    pixels = _native_pixels(path, header, offset, element)
    if pixels is None:
        return pydicom.dcmread(path), None
    return header, pixels


def _native_pixels(path: Path, ds: pydicom.Dataset, offset: int, element: bytes) -> np.ndarray | None:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    before_value = _NATIVE.get(syntax)
    if before_value is None or len(element) < before_value or struct.unpack("<HH", element[:4]) != PIXEL_DATA:
        return None
    try:
        rows, columns, allocated = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
        stored, signed = int(ds.get("BitsStored", allocated)), int(ds.get("PixelRepresentation", 0)) == 1
        greyscale = int(ds.get("SamplesPerPixel", 1)) == 1 and int(ds.get("NumberOfFrames", 1) or 1) == 1
    except (AttributeError, TypeError, ValueError):
        return None
    if not greyscale or allocated not in _INTEGER or not 0 < stored <= allocated:
        return None
    length = struct.unpack("<I", element[before_value - 4 : before_value])[0]
    count = rows * columns
    if length not in (count * allocated // 8, count * allocated // 8 + 1):  # odd lengths are padded by one byte
        return None
    raw = np.fromfile(path, dtype=_INTEGER[allocated], count=count, offset=offset + before_value)
    if raw.size != count:
        return None
    return _as_stored(raw.reshape(rows, columns), allocated, stored, signed)


def _as_stored(raw: np.ndarray, allocated: int, stored: int, signed: bool) -> np.ndarray:
    """The values BitsStored and PixelRepresentation mean: the unused high bits dropped, signed values extended."""
    if not signed:
        return raw & np.array((1 << stored) - 1, dtype=raw.dtype) if stored < allocated else raw
    values = raw.view(raw.dtype.str.replace("u", "i"))
    if stored < allocated:
        shift = allocated - stored
        values = (values << shift) >> shift  # arithmetic shift: the sign bit of the stored value is extended
    return values


def modality_values(ds: pydicom.Dataset, stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Modality units (Hounsfield for CT) as float32, into `out` when given: the rescale, or pydicom for a
    Modality LUT Sequence."""
    if out is None:
        out = np.empty(stored.shape, dtype=np.float32)
    if "ModalityLUTSequence" in ds:
        out[...] = pydicom.pixels.apply_modality_lut(stored, ds)
        return out
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    out[...] = stored
    if slope != 1:
        out *= np.float32(slope)
    if intercept:
        out += np.float32(intercept)
    return out
