"""The fit loop's callbacks, one job each (lookalike/training/fit.py has the hooks)."""

from lookalike.training.callbacks.backbone_freezing import BackboneFreezing
from lookalike.training.callbacks.checkpointing import Checkpointing
from lookalike.training.callbacks.console_log import ConsoleLog
from lookalike.training.callbacks.finite_guard import NonFiniteGuard
from lookalike.training.callbacks.lr_schedule import LearningRateSchedule
from lookalike.training.callbacks.pool_refresh import PoolRefresh
from lookalike.training.callbacks.progress_bar import ProgressBar
from lookalike.training.callbacks.validation import Validation

__all__ = [
    "BackboneFreezing",
    "Checkpointing",
    "ConsoleLog",
    "LearningRateSchedule",
    "NonFiniteGuard",
    "PoolRefresh",
    "ProgressBar",
    "Validation",
]
