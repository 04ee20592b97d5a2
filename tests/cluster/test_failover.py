"""kill -9 of a Cluster primary mid-upload: its replica takes over and every upload finishes.

A real 3-primary cluster with a replica per primary (`cluster-node-timeout` 1 s) and a real
server (gunicorn, `TUSSERVER_REDIS_MODE=cluster`). Uploads are half done (acknowledged), PATCHes
are in flight, and the primary serving one upload's slot is killed. The clients then do what a
tus client does (HEAD, PATCH from the offset, again after a 503) until every upload is complete.

Replication is asynchronous: an offset acknowledged a moment before a kill may not have reached
the replica yet (`TUSSERVER_REDIS_WAIT_REPLICAS` closes that window). This test waits for the
replicas (`WAIT`) before the kill, so it checks what the failover itself must never do: lose or
move backwards an offset the replica had, answer a 500, or corrupt a file.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import requests

from tests.support.live import live_server
from tests.support.rawhttp import RawConnection, RawResponse
from tests.support.redis_cluster import LocalCluster
from tests.support.tus_http import TUS, create_upload, patch
from tusserver import create_app
from tusserver.settings import Settings
from tusserver.state.connect import connect

SIZE = 1024 * 1024
HALF = SIZE // 2


def test_uploads_in_flight_resume_when_a_primary_dies(
    tmp_path: Path, failover_cluster: LocalCluster
) -> None:
    cluster = failover_cluster
    prefix = f"tusfail:{uuid.uuid4().hex[:8]}:"
    env = {"TUSSERVER_REDIS_MODE": "cluster", "TUSSERVER_REDIS_PREFIX": prefix}
    with live_server(tmp_path / "data", cluster.urls, env=env, workers=2) as server:
        bodies = {create_upload(server, SIZE): os.urandom(SIZE) for _ in range(6)}
        acknowledged: dict[str, int] = {}
        for url, body in bodies.items():
            answer = patch(url, 0, body[:HALF])
            assert answer.status_code == 204
            acknowledged[url] = int(answer.headers["Upload-Offset"])
        for node in cluster.nodes[: cluster.primaries]:
            with node.client() as client:
                assert client.execute_command("WAIT", 1, 5000) == 1  # the replicas have it

        first = next(iter(bodies))
        victim = cluster.primary_of(f"{prefix}upload:{{{first.rsplit('/', 1)[1]}}}")
        in_flight = {url: InFlightPatch(url, HALF, body[HALF:]) for url, body in bodies.items()}
        cluster.kill(victim)
        for connection in in_flight.values():
            connection.release_body()  # the rest of the body, after the kill
        for connection in in_flight.values():
            status = connection.response().status
            assert status in (204, 503), f"in-flight PATCH answered {status}"
            connection.close()

        for url, body in bodies.items():
            finish(url, body, acknowledged[url])
            download = requests.get(url, timeout=30)
            assert download.status_code == 200
            assert hashlib.sha256(download.content).digest() == hashlib.sha256(body).digest()

        assert cluster.replica_of(victim).role() == "master", "its replica took over"
        listed = requests.get(f"{server.url}/api/uploads?limit=50", timeout=10).json()
        assert {u["id"] for u in listed["uploads"]} >= {u.rsplit("/", 1)[1] for u in bodies}


class InFlightPatch:
    """A PATCH whose headers and first bytes are sent now and the rest on `release_body()`."""

    def __init__(self, url: str, offset: int, rest: bytes):
        self.connection = RawConnection(url)
        self.url = url
        self.rest = rest
        path = url.split("/", 3)[3]
        head = (
            f"PATCH /{path} HTTP/1.1\r\nHost: {self.connection.host}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {len(rest)}\r\n\r\n"
        )
        self.connection.sock.sendall(head.encode() + rest[:4096])

    def release_body(self) -> None:
        self.connection.sock.sendall(self.rest[4096:])

    def response(self) -> RawResponse:
        return self.connection.read_response()

    def close(self) -> None:
        self.connection.close()


def finish(url: str, body: bytes, acknowledged: int, timeout: float = 60) -> None:
    """Resume like a tus client until complete; offsets never fall below what was acknowledged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = requests.head(url, headers=TUS, timeout=10)
        assert head.status_code in (200, 503), f"HEAD answered {head.status_code}"
        if head.status_code == 503:
            time.sleep(0.1)
            continue
        offset = int(head.headers["Upload-Offset"])
        assert offset >= acknowledged, f"offset went back from {acknowledged} to {offset}"
        if offset == len(body):
            return
        answer = patch(url, offset, body[offset:])
        assert answer.status_code in (204, 409, 503), f"PATCH answered {answer.status_code}"
        if answer.status_code == 204:
            acknowledged = int(answer.headers["Upload-Offset"])
    raise AssertionError(f"{url} did not complete within {timeout}s")


def test_a_cluster_with_a_slot_down_answers_503_not_500(tmp_path: Path, data_dir: Path) -> None:
    """A primary without a replica dies: the cluster stops serving (CLUSTERDOWN), then every
    node dies: each request is a 503 with Retry-After, never a 500."""
    with LocalCluster(tmp_path / "cluster", primaries=3) as cluster:
        client = connect(cluster.url, mode="cluster")
        settings = Settings(
            data_dir=data_dir,
            redis_url=cluster.url,
            redis_mode="cluster",
            redis_prefix=f"tusdown:{uuid.uuid4().hex[:8]}:",
            auth="none",
        )
        app = create_app(settings, redis_client=client)
        try:
            http = app.test_client()
            created = http.post("/files/", headers={**TUS, "Upload-Length": "10"})
            assert created.status_code == 201
            path = created.headers["Location"]

            home = cluster.primary_of(f"{settings.redis_prefix}upload:{{{path.rsplit('/', 1)[1]}}}")
            cluster.kill(home)
            answers = [http.head(path, headers=TUS)]  # its node is gone
            cluster.wait_state("fail")  # then the whole cluster refuses: CLUSTERDOWN
            answers.append(http.post("/files/", headers={**TUS, "Upload-Length": "10"}))
            answers.append(http.get("/api/uploads"))
            for node in cluster.nodes:  # no node left: the client library's own exception
                if node.alive:
                    cluster.kill(node)
            answers.append(http.head(path, headers=TUS))

            assert [a.status_code for a in answers] == [503] * 4
            assert all(a.headers.get("Retry-After") for a in answers)
        finally:
            app.extensions["tusserver"].keeper.stop()
            client.close()
