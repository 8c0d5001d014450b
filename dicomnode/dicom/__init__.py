"""DICOM networking: the listener (SCP) and its admission policy, the sender (SCU), every DIMSE status code, UIDs."""
