"""C-STORE status codes this node returns (PS3.4 Table B.2-1); one place for each."""

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # disk full, write error, instance too large, below free-space floor
SOP_CLASS_MISMATCH = 0xA900  # data set does not match the SOP class of the request
CANNOT_UNDERSTAND = 0xC000  # data set cannot be decoded or lacks required attributes
INVALID_UID = 0xC001  # a UID breaks the DICOM grammar (nothing written)
INSTANCE_UID_MISMATCH = 0xC002  # data set SOP Instance UID differs from the request's
