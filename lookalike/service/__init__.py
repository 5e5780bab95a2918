"""The web service: a FastAPI app over one index, and the single search page it serves.

Exports load on first use: the CLI imports ``lookalike.service.settings`` for every command,
and should not pay for importing FastAPI then.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lookalike.service.app import create_app
    from lookalike.service.settings import ServiceSettings

_EXPORTS = {"ServiceSettings": "lookalike.service.settings",
            "create_app": "lookalike.service.app"}

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
