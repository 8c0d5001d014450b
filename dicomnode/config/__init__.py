"""Configuration: one TOML file plus DICOMNODE_* environment variables; one module per stage's section."""
