"""lookalike.sampling."""
