"""What spans uploads, on a real 3-primary cluster: the expiry index, the reaper, listings,
concatenation across nodes, and rebuild-index. (tests/http runs the protocol files on the
cluster too, and tests/contract the state and lock contracts.)"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
import redis
from flask import Flask

from tests.support.redis_cluster import LocalCluster
from tests.support.tus import TUS, create, head, patch, upload_id
from tusserver.maintenance import rebuild_index
from tusserver.storage.s3 import contiguous_parts


def components(app: Flask) -> Any:
    return app.extensions["tusserver"]


def test_the_reaper_removes_expired_uploads_whichever_node_indexes_them(
    make_app: Any, redis_cluster: LocalCluster, redis_prefix: str
) -> None:
    now = [1_000_000.0]
    app = make_app(clock=lambda: now[0], expire_after=60)
    client = app.test_client()
    paths = [create(client, 10) for _ in range(24)]
    state = components(app).state
    nodes = {redis_cluster.primary_of(state.keys.expiry(upload_id(p))).port for p in paths}
    assert len(nodes) == 3, "the expiry index is spread over every primary"

    now[0] += 61
    removed = components(app).service.cleanup()

    assert sorted(removed) == sorted(upload_id(p) for p in paths)
    assert all(head(client, p).status_code == 410 for p in paths)


def test_a_final_upload_joins_partials_that_live_on_different_nodes(
    app: Flask, redis_cluster: LocalCluster
) -> None:
    client = app.test_client()
    state = components(app).state
    pieces = [bytes([65 + n]) * (1000 + n) for n in range(6)]
    paths = []
    for piece in pieces:
        path = create(client, len(piece), headers={"Upload-Concat": "partial"})
        assert patch(client, path, 0, piece).status_code == 204
        paths.append(path)
    nodes = {redis_cluster.primary_of(state.keys.upload(upload_id(p))).port for p in paths}
    assert len(nodes) > 1

    final = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths)})

    assert final.status_code == 201
    location = final.headers["Location"]
    assert client.get(location).data == b"".join(pieces)
    assert client.delete(paths[0], headers=TUS).status_code == 403, "a final still uses it"
    assert client.delete(location, headers=TUS).status_code == 204
    assert all(head(client, p).status_code == 410 for p in paths), "unused partials go with it"


@pytest.mark.parametrize("store_kind", ["s3"])
def test_rebuild_index_restores_uploads_on_a_cluster(
    app: Flask, redis_client: redis.RedisCluster, redis_prefix: str
) -> None:
    """Redis lost everything (every node): rebuild-index brings the uploads back from S3."""
    client = app.test_client()
    data = [bytes([97 + n]) * (5000 + n) for n in range(5)]
    paths = []
    for body in data:
        path = create(client, len(body))
        assert patch(client, path, 0, body).status_code == 204
        paths.append(path)
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*", count=1000))
    redis_client.delete(*keys)
    assert head(client, paths[0]).status_code == 404

    parts = components(app)
    results = list(
        rebuild_index(parts.settings, parts.state, parts.store, contiguous_parts, time.time)
    )

    assert sorted(r.info.id for r in results if r.action == "restored") == sorted(
        upload_id(p) for p in paths
    )
    for path, body in zip(paths, data, strict=True):
        assert head(client, path).headers["Upload-Offset"] == str(len(body))
        assert hashlib.sha256(client.get(path).data).digest() == hashlib.sha256(body).digest()
    listed = client.get("/api/uploads?limit=50").get_json()
    assert {u["id"] for u in listed["uploads"]} == {upload_id(p) for p in paths}
