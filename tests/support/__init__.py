"""Shared test harness: real node, worker, redis, PostgreSQL and dcmtk processes; DICOM data; fixtures."""
