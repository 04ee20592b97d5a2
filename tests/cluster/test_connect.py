"""`state/connect.py`: the client each `TUSSERVER_REDIS_MODE` gets, on real servers."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.support.redis_cluster import LocalCluster
from tusserver.settings import Settings
from tusserver.state.connect import REDIS_ERRORS, connect, connect_settings


def without_password(url: str) -> str:
    parts = urlsplit(url)
    return f"redis://{parts.hostname}:{parts.port}{parts.path}"


def test_any_node_of_the_cluster_is_a_way_in(redis_cluster: LocalCluster) -> None:
    """Keys written through one node's URL are read through another's: the client finds all."""
    first = connect(redis_cluster.url, mode="cluster")
    keys = [f"tustest:{uuid.uuid4().hex}" for _ in range(12)]
    for key in keys:
        first.set(key, key, ex=60)
    other = redis_cluster.nodes[2]
    second = connect(f"redis://:{redis_cluster.password}@127.0.0.1:{other.port}/0", mode="cluster")
    try:
        assert [second.get(key) for key in keys] == keys
        assert len({redis_cluster.primary_of(key).port for key in keys}) > 1
    finally:
        first.delete(*keys)
        first.close()
        second.close()


def test_the_password_setting_serves_a_url_without_one(redis_cluster: LocalCluster) -> None:
    bare = without_password(redis_cluster.url)
    settings = Settings(redis_mode="cluster", redis_url=bare, redis_password=redis_cluster.password)
    client = connect_settings(settings)
    try:
        assert client.ping()
    finally:
        client.close()
    with pytest.raises(REDIS_ERRORS):  # no password: no node lets it in
        connect(bare, mode="cluster")


def test_single_mode_takes_the_password_setting_too(redis_url: str) -> None:
    password = urlsplit(redis_url).password
    if not password:
        pytest.skip("the session's Redis has no password (TUSTEST_REDIS_URL)")
    client = connect_settings(
        Settings(redis_url=without_password(redis_url), redis_password=password)
    )
    try:
        assert client.ping()
    finally:
        client.close()
    with pytest.raises(redis.AuthenticationError):
        connect(without_password(redis_url)).ping()


def test_several_nodes_may_be_named_and_a_dead_one_is_passed_over(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "cluster", primaries=3) as cluster:
        urls = cluster.urls
        cluster.kill(cluster.nodes[0])
        cluster.wait_state("fail")  # its slots are gone, but the others answer for the map
        client = connect(
            urls,
            mode="cluster",
        )
        try:
            assert {node.port for node in client.get_nodes()} >= {
                node.port for node in cluster.nodes[1:]
            }
        finally:
            client.close()
