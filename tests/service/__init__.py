"""The background-service base."""
