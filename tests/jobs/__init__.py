"""Job transitions."""
