"""lookalike.models."""
