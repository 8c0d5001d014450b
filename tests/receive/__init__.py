"""Receiving instances: ingest, header, storage, bad input."""
