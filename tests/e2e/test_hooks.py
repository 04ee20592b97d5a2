"""Hooks over HTTP against a live server: events, their order, exactly-once finish, vetoes."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.hook_receiver import HookReceiver, hook_receiver
from tests.support.live import LiveServer, free_port, live_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def policy(event: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Reject executables at pre-create; tag everything else; accept the rest."""
    if event["type"] == "pre-create":
        if event["upload"]["filename"].endswith(".exe"):
            return 403, {"message": "executables are not accepted"}
        return 200, {"metadata": {**event["upload"]["metadata"], "checked": "yes"}}
    return 200, None


def wait_for(receiver: HookReceiver, upload_id: str, count: int, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(receiver.types(upload_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything extra (a duplicate) would arrive now
    return receiver.types(upload_id)


EXPECTED = [
    ("pre-create", 0),
    ("post-create", 0),
    ("post-receive", 2),
    ("post-receive", 4),
    ("post-finish", 6),
    ("pre-terminate", 6),
    ("post-terminate", 6),
]
"""Every event of the scenario below with the upload's offset it reports, in request order."""


def run_scenario(receiver: HookReceiver, server: LiveServer) -> list[tuple[str, int]]:
    """A vetoed creation, then create, three PATCHes, a retried last PATCH and a DELETE, each
    on a new connection (so with several workers, several processes serve them); returns the
    events the receiver got for the upload, as (type, offset), in arrival order."""
    refused = requests.post(
        f"{server.url}/files/",
        headers={**TUS, "Upload-Length": "3", "Upload-Metadata": f"filename {b64('x.exe')}"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert "executables are not accepted" in refused.text

    created = requests.post(
        f"{server.url}/files/",
        headers={**TUS, "Upload-Length": "6", "Upload-Metadata": f"filename {b64('a.txt')}"},
        timeout=10,
    )
    url = created.headers["Location"]
    upload_id = url.rsplit("/", 1)[-1]
    head = requests.head(url, headers=TUS, timeout=10)
    assert f"checked {b64('yes')}" in head.headers["Upload-Metadata"]

    for offset, piece in ((0, b"ab"), (2, b"cd"), (4, b"ef")):
        sent = requests.patch(
            url, data=piece, headers={**OCTET, "Upload-Offset": str(offset)}, timeout=10
        )
        assert sent.status_code == 204
    retry = requests.patch(url, data=b"", headers={**OCTET, "Upload-Offset": "6"}, timeout=10)
    assert retry.status_code == 204  # the client retries its last PATCH: no second finish
    assert requests.delete(url, headers=TUS, timeout=10).status_code == 204

    wait_for(receiver, upload_id, len(EXPECTED))
    return [(e["type"], e["upload"]["offset"]) for e in receiver.events_for(upload_id)]


def test_hook_events_of_one_process_arrive_in_order_exactly_once(
    tmp_path: Path, redis_url: str
) -> None:
    """One worker process sends its notifications in the order they happened (one queue, one
    sender), so with a single worker the whole sequence is strict."""
    with hook_receiver(policy) as receiver:
        env = {"TUSSERVER_HOOKS_URL": receiver.url, "TUSSERVER_HOOKS_RECEIVE_INTERVAL": "0"}
        with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
            events = run_scenario(receiver, server)

    assert events == EXPECTED


def test_hook_events_across_workers_arrive_exactly_once_pre_before_post(
    tmp_path: Path, redis_url: str
) -> None:
    """With several workers each process sends its own notifications, so only what one request
    guarantees holds across them: every event exactly once, with the offset it happened at,
    and a blocking pre-hook before the notification of the same request."""
    with hook_receiver(policy) as receiver:
        env = {"TUSSERVER_HOOKS_URL": receiver.url, "TUSSERVER_HOOKS_RECEIVE_INTERVAL": "0"}
        with live_server(tmp_path / "data", redis_url, env=env, workers=2) as server:
            events = run_scenario(receiver, server)

    assert sorted(events) == sorted(EXPECTED)
    order = [event for event, _ in events]
    assert order.index("pre-create") < order.index("post-create")
    assert order.index("pre-terminate") < order.index("post-terminate")


def test_unreachable_blocking_hook_rejects_with_502(tmp_path: Path, redis_url: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks"
    env = {"TUSSERVER_HOOKS_URL": dead, "TUSSERVER_HOOKS_RETRIES": "1"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        response = requests.post(
            f"{server.url}/files/", headers={**TUS, "Upload-Length": "3"}, timeout=30
        )
        assert response.status_code == 502
        assert "pre-create hook" in response.text
        assert requests.get(f"{server.url}/api/uploads", timeout=10).json()["total"] == 0


def test_failing_notification_hooks_never_affect_the_client(tmp_path: Path, redis_url: str) -> None:
    def broken(event: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        return (200, None) if event["type"].startswith("pre-") else (500, None)

    with hook_receiver(broken) as receiver:
        env = {"TUSSERVER_HOOKS_URL": receiver.url, "TUSSERVER_HOOKS_RETRIES": "0"}
        with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
            created = requests.post(
                f"{server.url}/files/", headers={**TUS, "Upload-Length": "2"}, timeout=10
            )
            assert created.status_code == 201
            url = created.headers["Location"]
            sent = requests.patch(
                url, data=b"hi", headers={**OCTET, "Upload-Offset": "0"}, timeout=10
            )
            assert sent.status_code == 204
            assert wait_for(receiver, url.rsplit("/", 1)[-1], 3) == [
                "pre-create",
                "post-create",
                "post-finish",
            ]
