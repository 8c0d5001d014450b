"""The dicomnode command line: one module per command group, one rendering helper."""
