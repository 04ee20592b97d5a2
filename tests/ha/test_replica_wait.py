"""TUSSERVER_REDIS_WAIT_REPLICAS: a commit is reported only once the replicas have it.

Driven through the app (Flask's test client) on real Valkey servers: a Sentinel set whose
replica is stopped (SIGSTOP) and resumed at will, and the session's server, which has no
replica at all. A commit the replicas did not confirm is a 503 with Retry-After that reports
no offset; the client asks HEAD and goes on.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from tests.support.redis_cluster import LocalCluster
from tests.support.redis_sentinel import SentinelSet
from tusserver import create_app
from tusserver.settings import Settings, SettingsError
from tusserver.state.connect import connect_settings

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
CHUNK = b"w" * 1000


@pytest.fixture(scope="module")
def sentinels(steady_sentinels: SentinelSet) -> SentinelSet:
    """These tests stop a replica for a moment but never kill a node: one set for all."""
    return steady_sentinels


@pytest.fixture
def make_client(data_dir: Path, redis_prefix: str) -> Iterator[Any]:
    """A test client of an app on the given Redis settings (its keeper stopped after)."""
    apps: list[Flask] = []

    def make(**redis_settings: Any) -> FlaskClient:
        settings = Settings(
            data_dir=data_dir, redis_prefix=redis_prefix, auth="none", **redis_settings
        )
        app = create_app(settings, redis_client=connect_settings(settings))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["tusserver"].keeper.stop()


def sentinel_settings(sentinels: SentinelSet, **extra: Any) -> dict[str, Any]:
    return {
        "redis_mode": "sentinel",
        "redis_sentinels": tuple(sentinels.sentinel_addresses.split(",")),
        "redis_sentinel_master": "tusmaster",
        **extra,
    }


def create(client: FlaskClient, length: int) -> str:
    response = client.post("/files/", headers={**TUS, "Upload-Length": str(length)})
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def patch(client: FlaskClient, url: str, offset: int, data: bytes) -> Any:
    return client.patch(url, data=data, headers={**OCTET, "Upload-Offset": str(offset)})


def replica_offset(sentinels: SentinelSet, prefix: str, url: str) -> str | None:
    """The upload's offset as the replica has it, read from the replica itself."""
    upload_id = url.rstrip("/").rsplit("/", 1)[-1]
    with sentinels.node_client(sentinels.replicas()[0]) as replica:
        return replica.hget(f"{prefix}upload:{{{upload_id}}}", "offset")


def test_with_wait_every_acknowledged_offset_is_already_on_the_replica(
    make_client: Any, sentinels: SentinelSet, redis_prefix: str
) -> None:
    client = make_client(**sentinel_settings(sentinels, redis_wait_replicas=1))
    url = create(client, 5 * len(CHUNK))
    assert replica_offset(sentinels, redis_prefix, url) == "0"

    for step in range(5):
        if step == 2:
            # As on a freshly promoted master: no script cached. The commit script is sent
            # again on its own, and what confirms it is a marker written after it.
            with sentinels.node_client(sentinels.master()) as master:
                master.script_flush()
        response = patch(client, url, step * len(CHUNK), CHUNK)
        assert response.status_code == 204, response.text
        acknowledged = response.headers["Upload-Offset"]
        # Read from the replica the moment the answer is in: WAIT means it is there already.
        assert replica_offset(sentinels, redis_prefix, url) == acknowledged


def test_a_stalled_replica_turns_commits_into_503_that_report_no_offset(
    make_client: Any, sentinels: SentinelSet, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(
        **sentinel_settings(sentinels, redis_wait_replicas=1, redis_wait_timeout=200)
    )
    url = create(client, 2 * len(CHUNK))
    doomed = create(client, 10)
    replica = sentinels.replicas()[0]
    assert replica.process is not None

    replica.process.send_signal(signal.SIGSTOP)
    try:
        refused = patch(client, url, 0, CHUNK)
        created = client.post("/files/", headers={**TUS, "Upload-Length": "10"})
        terminated = client.delete(doomed, headers=TUS)
    finally:
        replica.process.send_signal(signal.SIGCONT)

    assert "redis unavailable: 0 of 1 replicas confirmed a commit within 200 ms" in caplog.text
    for response in (refused, created, terminated):
        assert response.status_code == 503, (response.status_code, response.text)
        assert "Retry-After" in response.headers, (response.request.method, response.headers)
    assert "Upload-Offset" not in refused.headers
    assert "Location" not in created.headers
    # The master did commit; once the replica is back the client learns the offset and goes on,
    # and a termination asked again finds the upload gone.
    assert client.delete(doomed, headers=TUS).status_code in (404, 410)
    offset = int(client.head(url, headers=TUS).headers["Upload-Offset"])
    done = patch(client, url, offset, CHUNK[: 2 * len(CHUNK) - offset])
    assert done.status_code == 204, done.text
    assert replica_offset(sentinels, redis_prefix, url) == str(2 * len(CHUNK))


def test_without_replicas_wait_refuses_every_commit_and_without_wait_nothing_changes(
    make_client: Any, redis_url: str
) -> None:
    """The session's server has no replica: WAIT 1 can never be satisfied."""
    waiting = make_client(redis_url=redis_url, redis_wait_replicas=1, redis_wait_timeout=50)
    plain = make_client(redis_url=redis_url)
    url = create(plain, len(CHUNK))

    refused = patch(waiting, url, 0, CHUNK)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert "Upload-Offset" not in refused.headers
    assert waiting.post("/files/", headers={**TUS, "Upload-Length": "1"}).status_code == 503
    assert plain.head(url, headers=TUS).status_code == 200  # reads never wait
    assert waiting.head(url, headers=TUS).status_code == 200


def test_wait_goes_on_the_connection_that_wrote(sentinels: SentinelSet) -> None:
    """WAIT only covers its own connection's writes: pipelined with the write, it waits."""
    settings = Settings(**sentinel_settings(sentinels))
    client = connect_settings(settings)
    assert isinstance(client, redis.Redis)
    replica = sentinels.replicas()[0]
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set("ha:probe", "1")
        pipe.execute_command("WAIT", 1, 100)
        assert pipe.execute() == [True, 0]
    finally:
        replica.process.send_signal(signal.SIGCONT)


def test_on_a_cluster_wait_goes_to_the_node_that_holds_the_upload(
    make_client: Any, tmp_path: Path, redis_prefix: str
) -> None:
    """3 primaries with a replica each: the WAIT of a commit goes to the upload's primary."""
    with LocalCluster(tmp_path / "cluster", primaries=3, replicas=1) as cluster:
        client = make_client(
            redis_mode="cluster",
            redis_url=cluster.url,
            redis_wait_replicas=1,
            redis_wait_timeout=300,
        )
        uploads = [create(client, 2 * len(CHUNK)) for _ in range(6)]
        for url in uploads:
            response = patch(client, url, 0, CHUNK)
            assert response.status_code == 204, response.text

        def key_of(url: str) -> str:
            return f"{redis_prefix}upload:{{{url.rsplit('/', 1)[-1]}}}"

        key = key_of(uploads[0])
        primary = cluster.primary_of(key)
        # Uploads on the other primaries, found before a replica stops (more made if the six
        # random ids happened to share one primary).
        elsewhere = [url for url in uploads[1:] if cluster.primary_of(key_of(url)) is not primary]
        while len(elsewhere) < 2:
            url = create(client, 2 * len(CHUNK))
            assert patch(client, url, 0, CHUNK).status_code == 204
            if cluster.primary_of(key_of(url)) is not primary:
                elsewhere.append(url)
        replica = cluster.replica_of(primary)
        with replica.client() as plain:
            plain.execute_command("READONLY")
            assert plain.hget(key, "offset") == str(len(CHUNK))
        assert replica.process is not None
        replica.process.send_signal(signal.SIGSTOP)
        try:
            stalled = patch(client, uploads[0], len(CHUNK), CHUNK)
            others = [patch(client, url, len(CHUNK), CHUNK) for url in elsewhere]
        finally:
            replica.process.send_signal(signal.SIGCONT)

    assert stalled.status_code == 503 and "Retry-After" in stalled.headers
    assert "Upload-Offset" not in stalled.headers
    # Uploads held by the other primaries (whose replicas run) are not held up.
    assert others and all(r.status_code == 204 for r in others), [r.status_code for r in others]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TUSSERVER_REDIS_WAIT_REPLICAS", "-1", "whole number"),
        ("TUSSERVER_REDIS_WAIT_TIMEOUT", "0", "at least 1"),
    ],
)
def test_wait_settings_that_could_hang_or_mean_nothing_stop_the_server(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})
    assert Settings.from_env({}).redis_wait_replicas == 0  # off unless asked for
