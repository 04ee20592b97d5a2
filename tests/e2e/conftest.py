"""End-to-end fixtures: a live gunicorn server on the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import LiveServer, live_server


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    """A server with the local store (fsync on), 2 workers."""
    with live_server(tmp_path / "data", redis_url) as running:
        yield running
