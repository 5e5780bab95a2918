"""Naive reference implementations that the vectorised hot paths are tested against."""
