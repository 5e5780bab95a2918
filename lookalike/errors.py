"""The lookalike error family.

Every message is one line that names the file, class or value at fault, so the command
line can print it as is (the traceback only with --verbose).
"""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class: an error the user can act on, with a one-line message."""


class DataError(LookalikeError):
    """A dataset, folder, manifest or image that cannot be used as given."""


class BadImageError(DataError):
    """One image file that cannot be decoded safely (corrupt, truncated, too big, not an image)."""


class ImageTooLargeError(BadImageError):
    """An image with more pixels than the cap (a decompression bomb, or simply too big)."""


class CheckpointError(LookalikeError):
    """A checkpoint that is missing, damaged, or made for another model."""


class ConfigError(LookalikeError):
    """An option value that makes no sense (unknown name, out of range, contradictory)."""


class TrainingError(LookalikeError):
    """Training cannot go on (for example a NaN loss); the last good checkpoint is kept."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C during training; the position was saved and ``--resume`` continues from it."""


class SearchIndexError(LookalikeError):
    """A search index folder that is missing files, damaged, written by another version,
    or asked to mix vectors from another model."""


class DiskFullError(LookalikeError):
    """A write failed because the disk (or quota) is full; what was committed before stays."""
