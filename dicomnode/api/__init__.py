"""The HTTP side of the node: REST and UPS-RS over the worklist, the live web page, served by uvicorn."""
