"""Procedurally generated training and test images (no real patient data)."""
