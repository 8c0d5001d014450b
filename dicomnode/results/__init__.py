"""AI results as DICOM: a TID 1500 Comprehensive 3D SR per study and model, a binary SEG for segmenting models,
and the key-image renderer of a finding.

Every UID is derived from the result UID (study + model + model version), so a
re-run produces the same instances and replaces, never duplicates, them in PACS.
"""
