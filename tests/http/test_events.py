"""`GET /api/events` through Flask's test client, on real Redis: who sees which file events,
resuming with `Last-Event-ID`, progress throttling, and the stream cap.

The stream's body is read as it is produced (`buffered=False`); a short heartbeat keeps every
read short, so a wait for an event that never comes ends at its deadline.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.support.accounts import add_token, add_user, bearer
from tests.support.sse import SseReader, of_upload
from tests.support.tcp_proxy import TcpProxy
from tusserver import create_app
from tusserver.state.connect import connect

# Events do not touch the data store: the local store, with state on a single Redis and on a
# real Redis Cluster (where the owner's and the fleet-wide stream live on different slots).
BOTH = pytest.mark.parametrize("store_kind", ["local", "cluster"])
LOCAL = pytest.mark.parametrize("store_kind", ["local"])

TUS = {"Tus-Resumable": "1.0.0"}
FAST = {"events_heartbeat": 0.1}


@contextmanager
def stream(client: Any, headers: dict[str, str] | None = None, **query: str) -> Iterator[SseReader]:
    response = client.get("/api/events", headers=headers or {}, query_string=query, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    reader = SseReader(response.response)
    try:
        reader.wait_open()
        yield reader
    finally:
        response.close()


def create(client: Any, headers: dict[str, str], length: int, name: str = "f.bin") -> str:
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    response = client.post(
        "/files/",
        headers={**TUS, **headers, "Upload-Length": str(length), "Upload-Metadata": metadata},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def patch(client: Any, headers: dict[str, str], upload_id: str, offset: int, data: bytes) -> None:
    response = client.patch(
        f"/files/{upload_id}",
        data=data,
        headers={
            **TUS,
            **headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status_code == 204, response.get_data(as_text=True)


@pytest.fixture
def accounts_app(make_app: Any) -> Flask:
    app = make_app(auth="required", **FAST)
    add_user(app, "alice")
    add_user(app, "bob")
    add_user(app, "root", role="admin")
    return app


@BOTH
def test_a_user_sees_only_their_own_file_events_and_an_admin_sees_everyones(
    accounts_app: Flask,
) -> None:
    client = accounts_app.test_client()
    alice, bob, root = (bearer(add_token(accounts_app, who)) for who in ("alice", "bob", "root"))
    with stream(client, alice) as alices, stream(client, root) as roots:
        bobs_upload = create(client, bob, 3, "bob.txt")
        alices_upload = create(client, alice, 3, "alice.txt")
        # Bob's event was published first: had Alice's stream carried it, it would come first.
        seen = alices.until(of_upload(alices_upload, "created"))
        assert [e.data["id"] for e in seen] == [alices_upload]
        assert seen[0].data["owner"] == "alice" and seen[0].data["filename"] == "alice.txt"
        everyone = roots.until(of_upload(alices_upload, "created"))
        assert [e.data["id"] for e in everyone] == [bobs_upload, alices_upload]
        assert everyone[0].data["owner"] == "bob"


@BOTH
def test_events_carry_the_upload_and_never_its_metadata(accounts_app: Flask) -> None:
    client = accounts_app.test_client()
    alice = bearer(add_token(accounts_app, "alice"))
    with stream(client, alice) as events:
        response = client.post(
            "/files/",
            headers={
                **TUS,
                **alice,
                "Upload-Length": "4",
                "Upload-Metadata": "filename YS50eHQ=,secret c2VjcmV0LXZhbHVl",
            },
        )
        upload_id = response.headers["Location"].rsplit("/", 1)[-1]
        created = events.until(of_upload(upload_id, "created"))[-1]
    assert created.id is not None
    assert {"id", "owner", "filename", "size", "offset", "complete", "time"} <= set(created.data)
    assert created.data["size"] == 4 and created.data["offset"] == 0
    assert "secret-value" not in str(created.data) and "metadata" not in created.data


@BOTH
def test_progress_finish_rename_and_delete_reach_the_stream(make_app: Any) -> None:
    app = make_app(events_progress_interval=3600, **FAST)  # one progress event, then none
    client = app.test_client()
    with stream(client) as events:
        upload_id = create(client, {}, 40)
        for offset in range(0, 30, 10):
            patch(client, {}, upload_id, offset, b"x" * 10)
        patch(client, {}, upload_id, 30, b"x" * 10)
        seen = events.until(of_upload(upload_id, "finished"))
        renamed = client.patch(f"/api/uploads/{upload_id}", json={"filename": "new name"})
        assert renamed.status_code == 200
        events.until(of_upload(upload_id, "renamed"))
        assert client.delete(f"/api/uploads/{upload_id}").status_code == 204
        deleted = events.until(of_upload(upload_id, "deleted"))[-1]
    kinds = [e.event for e in seen]
    # Three PATCHes that did not finish within the interval: the first is announced, the
    # other two are held back (the finish makes them moot).
    assert kinds == ["created", "progress", "finished"]
    assert seen[1].data["offset"] == 10
    assert seen[-1].data["offset"] == 40 and seen[-1].data["complete"] is True
    assert events.seen[-2].data["filename"] == "new name"
    assert deleted.data["reason"] == "terminated"


@BOTH
def test_a_tag_change_is_announced_with_the_new_tags(make_app: Any) -> None:
    app = make_app(**FAST)
    client = app.test_client()
    with stream(client) as events:
        upload_id = create(client, {}, 5)
        assert (
            client.patch(f"/api/uploads/{upload_id}", json={"tags": ["b", "a"]}).status_code == 200
        )
        tagged = events.until(of_upload(upload_id, "tagged"))[-1]
        # The same tags again change nothing: no event; a rename is a rename, not a retag.
        client.patch(f"/api/uploads/{upload_id}", json={"tags": ["b", "a"]})
        client.patch(f"/api/uploads/{upload_id}", json={"filename": "x.txt"})
        after = events.until(of_upload(upload_id, "renamed"))
    assert sorted(tagged.data["tags"]) == ["a", "b"]
    assert [e.event for e in after] == ["renamed"]
    assert sorted(after[0].data["tags"]) == ["a", "b"]


@BOTH
def test_a_held_back_progress_event_is_sent_when_its_interval_has_passed(make_app: Any) -> None:
    app = make_app(events_progress_interval=0.3, **FAST)
    client = app.test_client()
    with stream(client) as events:
        upload_id = create(client, {}, 100)
        for offset in range(0, 50, 10):
            patch(client, {}, upload_id, offset, b"x" * 10)
        # However the PATCHes fell into intervals, the last offset is announced in the end.
        seen = events.until(lambda e: e.data.get("offset") == 50)
    progress = [e for e in seen if e.event == "progress"]
    offsets = [e.data["offset"] for e in progress]
    assert offsets == sorted(offsets) and offsets[-1] == 50
    assert len(progress) < 5 or len(set(offsets)) == len(offsets)


@BOTH
def test_last_event_id_resumes_after_that_event(make_app: Any) -> None:
    app = make_app(**FAST)
    client = app.test_client()
    with stream(client) as events:
        ids = [create(client, {}, 5, f"{n}.txt") for n in range(3)]
        seen = events.until(of_upload(ids[2], "created"))
    first = next(e for e in seen if e.data["id"] == ids[0])
    with stream(client, {"Last-Event-ID": first.id}) as resumed:
        again = resumed.until(of_upload(ids[2], "created"))
    assert [e.data["id"] for e in again] == ids[1:]
    assert "reset" not in [e.event for e in again]
    # EventSource cannot set headers on a fresh connection: the query parameter does the same.
    with stream(client, last_event_id=first.id) as resumed:
        assert [e.data["id"] for e in resumed.until(of_upload(ids[2]))] == ids[1:]


@LOCAL
@pytest.mark.parametrize("bad_id", ["0-1", "not-an-id", "99999999999999-0"])
def test_an_id_the_server_cannot_vouch_for_starts_over_with_a_reset(
    make_app: Any, bad_id: str
) -> None:
    app = make_app(**FAST)
    client = app.test_client()
    with stream(client) as events:
        ids = [create(client, {}, 5) for _ in range(2)]
        events.until(of_upload(ids[1]))
    with stream(client, {"Last-Event-ID": bad_id}) as resumed:
        seen = resumed.until(of_upload(ids[1]))
    assert seen[0].event == "reset"
    assert [e.data["id"] for e in seen[1:]] == ids  # everything retained, oldest first


@LOCAL
def test_more_streams_than_the_cap_get_503_with_retry_after(make_app: Any) -> None:
    app = make_app(events_max_streams=1, **FAST)
    client = app.test_client()
    with stream(client):
        refused = client.get("/api/events")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        assert refused.get_json()["error"]["code"] == "too-many-event-streams"
    with stream(client):  # the first one closed: room again
        pass


@LOCAL
def test_who_may_not_follow_events(accounts_app: Flask) -> None:
    client = accounts_app.test_client()
    assert client.get("/api/events").status_code == 401


@LOCAL
def test_events_turned_off(make_app: Any) -> None:
    client = make_app(events_enabled=False).test_client()
    assert client.get("/api/events").status_code == 404
    upload_id = create(client, {}, 1)  # uploads work as before
    assert upload_id


@LOCAL
def test_an_event_published_while_the_subscription_was_down_still_arrives(
    make_app: Any, make_settings: Any, redis_url: str
) -> None:
    """The server's one subscription breaks (Redis unreachable); an event published meanwhile
    (by another server) never reaches it through pub/sub, yet the open stream gets it: on
    re-subscribing, every stream catches up from the Redis stream."""
    parts = urlsplit(redis_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        proxied = redis_url.replace(f"{parts.hostname}:{parts.port}", proxy.address)
        watched = create_app(make_settings(**FAST), redis_client=connect(proxied))
        other = make_app(**FAST)  # another server: same Redis and prefix, its own connections
        try:
            with stream(watched.test_client()) as events:
                proxy.cut()
                upload_id = create(other.test_client(), {}, 3)
                assert other.extensions["tusserver"].events.publisher.flush()
                proxy.restore()
                assert events.until(of_upload(upload_id, "created"))[-1].id
        finally:
            watched.extensions["tusserver"].events.stop()
            watched.extensions["tusserver"].keeper.stop()


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@BOTH
def test_an_expired_upload_is_announced_as_deleted_by_expiry(make_app: Any) -> None:
    clock = _Clock()
    app = make_app(clock=clock, expire_after=60, **FAST)
    client = app.test_client()
    with stream(client) as events:
        upload_id = create(client, {}, 10)
        clock.now += 61
        assert upload_id in app.extensions["tusserver"].service.cleanup()
        deleted = events.until(of_upload(upload_id, "deleted"))[-1]
    assert deleted.data["reason"] == "expired"
