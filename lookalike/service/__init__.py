"""The web service: a FastAPI app over one index, and the single search page it serves."""

from __future__ import annotations

from lookalike.service.app import create_app
from lookalike.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
