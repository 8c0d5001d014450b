"""The root of the node's domain errors. Each stage defines its own errors next to its code, under this root;
their messages are written to be shown and logged (no patient data). Protocol answers (DIMSE statuses, HTTP
codes) are chosen at the edges (dicom/, api/), never carried by the error itself."""


class DicomnodeError(Exception):
    """Something the node refuses or cannot do, said in words safe for a log."""
