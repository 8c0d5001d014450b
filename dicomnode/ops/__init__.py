"""Operations: audit trail, metrics, health, logging and retention."""
