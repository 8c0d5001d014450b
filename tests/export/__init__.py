"""Exports to PACS."""
