"""File Meta Information (PS3.10 7.1) of the files this node writes, and the implementation that wrote them."""

from __future__ import annotations

import struct

from dicomnode import __version__

# Ours, from the 2.25 (UUID) arc: identifies files this node wrote.
IMPLEMENTATION_CLASS_UID = "2.25.137038125948464394958147018461385473501"
IMPLEMENTATION_VERSION_NAME = ("DICOMNODE_" + __version__.replace(".", ""))[:16]


def file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str) -> bytes:
    """Preamble, 'DICM' and the File Meta Information (PS3.10 7.1) for a received instance.

    Encoded here rather than by pydicom's writer, which costs about a millisecond
    per instance on the receive path; tests compare the bytes with pydicom's.
    """
    elements = [
        _element(0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, b"UI", _uid_value(sop_class_uid)),
        _element(0x0003, b"UI", _uid_value(sop_instance_uid)),
        _element(0x0010, b"UI", _uid_value(transfer_syntax_uid)),
        _element(0x0012, b"UI", _uid_value(IMPLEMENTATION_CLASS_UID)),
        _element(0x0013, b"SH", padded_to_even(IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" ")),
    ]
    if source_ae:
        elements.append(_element(0x0016, b"AE", padded_to_even(source_ae.encode("ascii", "replace"), b" ")))
    body = b"".join(elements)
    group_length = _GROUP_LENGTH_HEADER + struct.pack("<L", len(body))
    return _PREAMBLE + group_length + body


_PREAMBLE = b"\x00" * 128 + b"DICM"
_GROUP_LENGTH_HEADER = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<H", 4)


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", 0x0002, element)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def padded_to_even(value: bytes, pad: bytes) -> bytes:
    """A value padded to even length (PS3.5 7.1.1): UIs with NUL, text with a space."""
    return value + pad if len(value) % 2 else value


def _uid_value(uid: str) -> bytes:
    return padded_to_even(uid.encode("ascii"), b"\x00")
