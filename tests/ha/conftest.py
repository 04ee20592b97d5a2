"""High-availability fixtures: a real Sentinel set (1 master, 1 replica, 3 sentinels)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_sentinel import SentinelSet, sentinel_set


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelSet]:
    """A fresh set for one test (failover tests change which node is master)."""
    with sentinel_set(tmp_path / "sentinel") as running:
        yield running


@pytest.fixture(scope="module")
def steady_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """One set for a module whose tests never kill a node (each test has its own key prefix)."""
    with sentinel_set(tmp_path_factory.mktemp("sentinel")) as running:
        yield running
