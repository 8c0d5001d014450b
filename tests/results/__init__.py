"""SR and SEG encoding and validation."""
