"""The worklist: scoring, items, in a node, in a browser."""
