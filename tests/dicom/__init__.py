"""DICOM networking: associations, admission, TLS."""
