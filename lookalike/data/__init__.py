"""lookalike.data."""
