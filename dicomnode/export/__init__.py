"""Export: the durable outbox both senders share, the DICOM sender to PACS and the webhook sender."""
