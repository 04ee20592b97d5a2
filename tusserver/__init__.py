"""tusserver: a resumable-upload server speaking tus 1.0.0, with Redis state and local or S3 data.

gunicorn runs `tusserver:create_app()`; `tusserver serve` does that for you.

`create_app` is imported lazily: `tusserver serve` must configure prometheus_client's
multiprocess directory before anything imports it, and importing the app would.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'tusserver' has no attribute {name!r}")
