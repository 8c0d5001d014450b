"""Operations: health, metrics, retention."""
