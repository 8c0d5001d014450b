"""Catalog states and transitions."""
