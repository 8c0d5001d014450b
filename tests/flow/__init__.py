"""The whole flow, end to end."""
