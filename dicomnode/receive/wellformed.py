"""Check that received data set bytes are complete: every element fits and the stream ends exactly.

pydicom reads a data set cut short inside Pixel Data without complaint, and the
node never decodes pixels, so this walk over element headers (values skipped)
is what tells a truncated or garbled instance from a whole one.
"""

from __future__ import annotations

import struct
import zlib

from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from dicomnode.errors import DicomnodeError

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
# The VRs with a 2-byte length in explicit VR syntaxes (PS3.5 7.1.2); anything else is not DICOM, and an instance
# pydicom cannot decode must not be acknowledged and archived.
_SHORT_VRS = {
    b"AE",
    b"AS",
    b"AT",
    b"CS",
    b"DA",
    b"DS",
    b"DT",
    b"FD",
    b"FL",
    b"IS",
    b"LO",
    b"LT",
    b"PN",
    b"SH",
    b"SL",
    b"SS",
    b"ST",
    b"TM",
    b"UI",
    b"UL",
    b"US",
}
MAX_DEPTH = 32
_INFLATE_CHUNK = 4 * 1024**2


class MalformedDataset(DicomnodeError, ValueError):
    """The bytes are not one complete data set in the negotiated transfer syntax."""


class InflatesTooLarge(DicomnodeError, ValueError):
    """A deflated data set that inflates past the size limit (a deflate bomb, or just too large)."""


def inflated(
    dataset: bytes | memoryview, transfer_syntax_uid: str, max_bytes: int | None = None
) -> tuple[bytes | memoryview, UID]:
    """The data set and its syntax, inflated to explicit VR little endian if it arrived deflated.

    Inflates in chunks and stops as soon as the output passes `max_bytes`: 1 MB on the wire can
    inflate to gigabytes. Callers that both check and read a data set inflate once and pass the result on.
    """
    ts = UID(transfer_syntax_uid)
    if ts != DeflatedExplicitVRLittleEndian:
        return dataset, ts
    return _inflate(dataset, max_bytes), ExplicitVRLittleEndian


def check_complete(dataset: bytes | memoryview, transfer_syntax_uid: str) -> None:
    """Raise MalformedDataset unless `dataset` is a whole data set in `transfer_syntax_uid`."""
    dataset, ts = inflated(dataset, transfer_syntax_uid)
    if not dataset:
        raise MalformedDataset("empty data set")
    walker = _Walker(dataset, implicit=ts.is_implicit_VR, little=ts.is_little_endian)
    end = walker.walk(0, depth=0, until_delimiter=False)
    if end != len(dataset):
        raise MalformedDataset("data set length does not match its elements")


def _inflate(data: bytes | memoryview, max_bytes: int | None) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                raise MalformedDataset("deflated data set is truncated")
            out += chunk
            if max_bytes is not None and len(out) > max_bytes:
                raise InflatesTooLarge(f"deflated data set inflates to over {max_bytes} bytes, the limit")
    except zlib.error:
        raise MalformedDataset("deflated data set does not inflate") from None
    return bytes(out)


class _Walker:
    def __init__(self, buf: bytes | memoryview, implicit: bool, little: bool) -> None:
        self.buf = buf
        self.implicit = implicit
        order = "<" if little else ">"
        self.tag_fmt = struct.Struct(order + "HH")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "L")

    def walk(self, pos: int, depth: int, until_delimiter: bool) -> int:
        """Skip elements from `pos`; return where they end (after a delimiter if one is awaited)."""
        if depth > MAX_DEPTH:
            raise MalformedDataset("sequences nested too deeply")
        buf, end = self.buf, len(self.buf)
        while pos < end:
            if pos + 8 > end:
                raise MalformedDataset("truncated element header")
            group, element = self.tag_fmt.unpack_from(buf, pos)
            tag = (group << 16) | element
            if group == 0xFFFE:
                length = self.u32.unpack_from(buf, pos + 4)[0]
                pos += 8
                if tag in (ITEM_END, SEQUENCE_END):
                    if not until_delimiter:
                        raise MalformedDataset("unexpected delimiter")
                    return pos
                if tag != ITEM:
                    raise MalformedDataset("unknown item tag")
                pos = self._value_end(pos, length, depth)
                continue
            if self.implicit:
                length, pos = self.u32.unpack_from(buf, pos + 4)[0], pos + 8
            elif buf[pos + 4 : pos + 6] in LONG_VRS:
                if pos + 12 > end:
                    raise MalformedDataset("truncated element header")
                length, pos = self.u32.unpack_from(buf, pos + 8)[0], pos + 12
            elif buf[pos + 4 : pos + 6] in _SHORT_VRS:
                length, pos = self.u16.unpack_from(buf, pos + 6)[0], pos + 8
            else:
                raise MalformedDataset("unknown value representation")
            pos = self._value_end(pos, length, depth)
        if until_delimiter:
            raise MalformedDataset("truncated: missing sequence or item delimiter")
        return pos

    def _value_end(self, pos: int, length: int, depth: int) -> int:
        if length == UNDEFINED:
            return self.walk(pos, depth + 1, until_delimiter=True)
        if pos + length > len(self.buf):
            raise MalformedDataset("truncated: value runs past the end of the data")
        return pos + length
