"""The catalog: the source of truth for everything the node holds (SQLAlchemy)."""
