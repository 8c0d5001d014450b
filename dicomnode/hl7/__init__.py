"""HL7 v2: the order listener, orders in the catalog, messages in and out."""
