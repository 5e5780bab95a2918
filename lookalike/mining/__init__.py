"""lookalike.mining."""
