"""Batch samplers: P x K class-balanced batches, the queues other samplers build on, and the
batch shape fitted to the training labels."""

from __future__ import annotations

from lookalike.sampling.batch_shape import BatchShape, resolve_batch_shape
from lookalike.sampling.pk import ClassQueues, PKSampler, ShuffledQueue

__all__ = ["BatchShape", "ClassQueues", "PKSampler", "ShuffledQueue", "resolve_batch_shape"]
