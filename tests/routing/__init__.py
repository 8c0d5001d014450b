"""Routing rules and the router."""
