"""lookalike.mining: in-batch selectors, contrastive pairs, offline pools and their analysis."""

from lookalike.mining.pairs import check_ratio, select_pairs
from lookalike.mining.pool_search import mine_pools
from lookalike.mining.pools import PoolConfig, Pools
from lookalike.types import Pairs

__all__ = ["Pairs", "PoolConfig", "Pools", "check_ratio", "mine_pools", "select_pairs"]
