"""Detection models: registry, manifests, phantoms, training and evaluation.

Knows numpy and torch, not DICOM networking or the catalog.
"""
