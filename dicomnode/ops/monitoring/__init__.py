"""Does the AI still work: per model version figures from the catalog, input drift, reader agreement, alerts."""
