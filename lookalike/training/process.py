"""Which process this is, for the one decision that depends on it: only the main process
writes the run folder and prints (lookalike/training/trainer.py ``callbacks_for``)."""

from __future__ import annotations

import torch.distributed as dist


def is_main_process() -> bool:
    """True in a plain run, and on rank 0 of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
