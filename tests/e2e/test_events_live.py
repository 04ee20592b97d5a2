"""Live updates on real servers (gunicorn, the gevent worker) sharing one Redis, read with a real
streaming HTTP client (`httpx`): an upload that finishes on server B appears on server A's
stream, a stream resumes on another server with `Last-Event-ID`, and event streams do not use
up a client's connections under `TUSSERVER_MAX_CONNECTIONS_PER_CLIENT`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import requests

from tests.support.live import LiveServer, live_server
from tests.support.nginx import nginx_binary, running_nginx
from tests.support.sse import SseReader, of_upload
from tests.support.tools import missing
from tests.support.tus_http import create_upload, patch

FAST = {"TUSSERVER_EVENTS_HEARTBEAT": "0.5"}


@contextmanager
def stream(
    client: httpx.Client, server: LiveServer | str, last_event_id: str | None = None
) -> Iterator[SseReader]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    base = server if isinstance(server, str) else server.url
    with client.stream("GET", f"{base}/api/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if not isinstance(server, str):  # nginx acts on this header and does not pass it on
            assert response.headers["x-accel-buffering"] == "no"
        reader = SseReader(response.iter_bytes())
        reader.wait_open()
        yield reader


@pytest.fixture
def fleet(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two servers, each with its own data directory, on one Redis under one key prefix."""
    env = {**FAST, "TUSSERVER_REDIS_PREFIX": f"tuse2e:{uuid.uuid4().hex[:10]}:"}
    with (
        live_server(tmp_path / "a", redis_url, env=dict(env), workers=2) as a,
        live_server(tmp_path / "b", redis_url, env=dict(env), workers=1) as b,
    ):
        yield a, b


def test_an_upload_finished_on_one_server_appears_on_the_others_stream_and_resumes_there(
    fleet: tuple[LiveServer, LiveServer],
) -> None:
    a, b = fleet
    with httpx.Client(timeout=30) as client:
        with stream(client, a) as on_a:
            url = create_upload(b, 10)
            upload_id = url.rsplit("/", 1)[-1]
            assert patch(url, 0, b"01234").status_code == 204
            assert patch(url, 5, b"56789").status_code == 204
            seen = on_a.until(of_upload(upload_id, "finished"))
        kinds = [e.event for e in seen if e.data["id"] == upload_id]
        assert kinds[0] == "created" and kinds[-1] == "finished"
        assert seen[-1].data["offset"] == 10 and seen[-1].data["complete"] is True

        # A's ids are the fleet's ids: resuming on B after the creation replays what followed.
        created = next(e for e in seen if e.event == "created")
        with stream(client, b, last_event_id=created.id) as on_b:
            replayed = on_b.until(of_upload(upload_id, "finished"))
        assert [e.id for e in replayed] == [e.id for e in seen[seen.index(created) + 1 :]]


def test_event_streams_do_not_use_up_a_clients_connections(tmp_path: Path, redis_url: str) -> None:
    env = {**FAST, "TUSSERVER_MAX_CONNECTIONS_PER_CLIENT": "2"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        with httpx.Client(timeout=30) as client, ExitStack() as streams:
            readers = [streams.enter_context(stream(client, server)) for _ in range(3)]
            # Three streams open from this address, over the cap of two: uploads still go.
            url = create_upload(server, 3)
            assert patch(url, 0, b"abc").status_code == 204
            for reader in readers:
                reader.until(of_upload(url.rsplit("/", 1)[-1], "finished"))
        assert requests.get(f"{server.url}/api/health", timeout=10).status_code == 200


def test_events_pass_through_nginx_at_once_and_streams_are_not_counted_per_client(
    tmp_path: Path, redis_url: str
) -> None:
    """Through nginx (the compose template), each event arrives while the stream is open (not
    when a buffer fills or the stream ends), and open streams do not use up the cap of
    requests in flight per forwarded address: uploads still go."""
    binary = nginx_binary()
    if binary is None:
        missing("nginx is not installed (Debian package `nginx`)")
        raise AssertionError("unreachable")
    env = {
        **FAST,
        "TUSSERVER_BEHIND_PROXY": "true",
        "TUSSERVER_MAX_CONNECTIONS_PER_CLIENT": "1",
    }
    with (
        live_server(tmp_path / "data", redis_url, env=env, workers=1) as server,
        running_nginx(binary, int(server.url.rsplit(":", 1)[1]), tmp_path / "nginx") as nginx,
        httpx.Client(timeout=30) as client,
        stream(client, nginx.url) as first,
        stream(client, nginx.url) as second,
    ):
        response = requests.post(
            f"{nginx.url}/files/",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": "2"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        upload_id = response.headers["Location"].rsplit("/", 1)[-1]
        for reader in (first, second):
            reader.until(of_upload(upload_id, "created"))


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_sigterm_ends_open_streams_instead_of_holding_the_shutdown(
    tmp_path: Path, redis_url: str, worker_class: str
) -> None:
    """Streams never end by themselves: a worker that waited for them would wait out its whole
    graceful timeout (here 120 s, longer than the stop below allows)."""
    env = {
        **FAST,
        "TUSSERVER_SHUTDOWN_TIMEOUT": "120",
        "TUSSERVER_WORKER_CLASS": worker_class,
    }
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        with httpx.Client(timeout=30) as client, stream(client, server) as reader:
            status = server.stop(timeout=20)  # SIGKILL (status -9) after 20 s
            assert reader.next_event(timeout=20) is None  # the stream ended
        assert status == 0, server.log()
