"""lookalike.mining: in-batch selectors, contrastive pairs, offline pools and their analysis."""

from lookalike.mining.pairs import check_ratio, select_pairs
from lookalike.types import Pairs

__all__ = ["Pairs", "check_ratio", "select_pairs"]
