"""The demo: synthetic studies pushed by dcmtk to a node, results to a PACS stand-in."""
