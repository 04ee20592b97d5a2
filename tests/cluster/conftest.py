"""Tests that need a Redis Cluster of their own (they kill nodes) or look at its topology.

The shared 3-primary cluster is the session's `redis_cluster` (tests/conftest.py); a test that
kills a primary gets `failover_cluster`, a fresh 3 primaries + 1 replica each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_fixtures import app, client, make_app, make_settings  # noqa: F401
from tests.support.redis_cluster import LocalCluster


@pytest.fixture
def redis_mode() -> str:
    return "cluster"


@pytest.fixture
def store_kind() -> str:
    return "local"


@pytest.fixture
def failover_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """3 primaries with a replica each; a killed primary's replica takes over in seconds."""
    with LocalCluster(tmp_path / "cluster", primaries=3, replicas=1) as cluster:
        yield cluster
