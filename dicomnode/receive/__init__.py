"""Receive one instance: check it is well formed, read its header, store it durably, index it."""
