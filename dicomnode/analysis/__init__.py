"""Analysis: load a series as a volume, check the model's scope, commit a finished job's result in one transaction."""
