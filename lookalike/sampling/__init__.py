"""Batch samplers: P x K class-balanced batches and the queues other samplers build on."""

from __future__ import annotations

from lookalike.sampling.pk import ClassQueues, PKSampler, ShuffledQueue

__all__ = ["ClassQueues", "PKSampler", "ShuffledQueue"]
