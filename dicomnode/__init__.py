"""dicomnode: a PACS-integrated DICOM node and AI worklist prioritizer."""

__version__ = "0.1.0"
