"""lookalike.losses."""
