"""Study completion."""
