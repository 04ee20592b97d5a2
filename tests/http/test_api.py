"""The JSON API under /api/: listing, one upload, rename, delete, health."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis

from tests.support.tus import TUS, create, patch, stored_objects, upload_id
from tusserver import create_app
from tusserver.state.connect import connect

T0 = 1_750_000_000.0


@pytest.fixture
def clock() -> Any:
    """A clock that ticks one second per call, so creation times are distinct and ordered."""
    now = [T0]

    def tick() -> float:
        now[0] += 1
        return now[0]

    return tick


@pytest.fixture
def client(make_app: Any, clock: Any) -> Any:
    return make_app(clock=clock).test_client()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- listing ----------------------------------------------------------------------------------


def test_empty_listing(client: Any) -> None:
    response = client.get("/api/uploads")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {
        "uploads": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
        "next": None,
    }


def test_listing_is_newest_first_and_paginated(client: Any) -> None:
    paths = [create(client, 10, filename=f"file{i}.txt") for i in range(5)]
    newest_first = [upload_id(p) for p in reversed(paths)]

    page = client.get("/api/uploads?limit=2").get_json()
    assert [u["id"] for u in page["uploads"]] == newest_first[:2]
    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["next"].endswith("/api/uploads?limit=2&offset=2")

    page = client.get(page["next"]).get_json()
    assert [u["id"] for u in page["uploads"]] == newest_first[2:4]

    page = client.get(page["next"]).get_json()
    assert [u["id"] for u in page["uploads"]] == newest_first[4:]
    assert page["next"] is None

    assert client.get("/api/uploads?offset=10").get_json()["uploads"] == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=abc", "limit=-1", "offset=-1", "offset=x", "limit=1.5"]
)
def test_bad_paging_is_400_json(client: Any, query: str) -> None:
    response = client.get(f"/api/uploads?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad-request"
    assert response.get_json()["error"]["message"]


def test_upload_json(client: Any) -> None:
    path = create(client, 10, filename="notes.txt", filetype="text/plain")
    patch(client, path, 0, b"abc")
    item = client.get("/api/uploads").get_json()["uploads"][0]
    assert item["id"] == upload_id(path)
    assert item["filename"] == "notes.txt"
    assert item["filetype"] == "text/plain"
    assert item["size"] == 10
    assert item["offset"] == 3
    assert item["complete"] is False
    assert item["expires"].endswith("Z")
    assert item["url"].endswith(path)
    assert item["metadata"] == {"filename": "notes.txt", "filetype": "text/plain"}
    patch(client, path, 3, b"defghij")
    item = client.get("/api/uploads").get_json()["uploads"][0]
    assert item["complete"] is True
    assert item["offset"] == 10
    assert item["expires"] is None


# --- one upload -------------------------------------------------------------------------------


def test_get_one_upload(client: Any) -> None:
    path = create(client, 7, filename="a.bin")
    response = client.get(f"/api/uploads/{upload_id(path)}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == upload_id(path)
    assert body["size"] == 7
    assert body["filename"] == "a.bin"


@pytest.mark.parametrize("upload", ["0123456789abcdef0123456789abcdef", "nope", "ABC" * 11])
def test_get_unknown_upload_is_404_json(client: Any, upload: str) -> None:
    response = client.get(f"/api/uploads/{upload}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not-found"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- rename -----------------------------------------------------------------------------------


def test_rename(client: Any) -> None:
    path = create(client, 3, filename="old.txt", filetype="text/plain")
    patch(client, path, 0, b"abc")
    response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "  Naïve.txt "})
    assert response.status_code == 200
    assert response.get_json()["filename"] == "Naïve.txt"
    assert response.get_json()["metadata"]["filetype"] == "text/plain"
    assert client.get(f"/api/uploads/{upload_id(path)}").get_json()["filename"] == "Naïve.txt"
    assert "filename*=UTF-8''Na%C3%AFve.txt" in client.get(path).headers["Content-Disposition"]


def test_rename_replaces_a_name_key(client: Any) -> None:
    path = create(client, 3, name="old.txt")
    response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "new.txt"})
    assert response.get_json()["filename"] == "new.txt"
    assert "name" not in response.get_json()["metadata"]


@pytest.mark.parametrize(
    "filename",
    [
        "",
        "   ",
        "x" * 256,
        "a/b",
        "/",
        "tab\there",
        "new\nline",
        "nul\x00",
        "del\x7f",
        "car\rriage",
        "nel\x85x",
        "line\u2028sep",
    ],
)
def test_rename_validation(client: Any, filename: str) -> None:
    path = create(client, 3, filename="keep.txt")
    response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": filename})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    assert client.get(f"/api/uploads/{upload_id(path)}").get_json()["filename"] == "keep.txt"


def test_rename_accepts_255_characters(client: Any) -> None:
    path = create(client, 3)
    response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "é" * 255})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"name": "x"}', b'{"filename": 5}', b'{"filename": null}', b""],
)
def test_rename_needs_a_json_object_with_filename(client: Any, body: bytes) -> None:
    path = create(client, 3, filename="keep.txt")
    response = client.patch(
        f"/api/uploads/{upload_id(path)}", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["message"]


def test_rename_unknown_upload_is_404(client: Any) -> None:
    response = client.patch("/api/uploads/0123456789abcdef0123456789abcdef", json={"filename": "x"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not-found"


# --- delete -----------------------------------------------------------------------------------


def test_delete(make_app: Any, clock: Any) -> None:
    app = make_app(clock=clock)
    client = app.test_client()
    path = create(client, 100_000)
    patch(client, path, 0, b"x" * 70_000)
    response = client.delete(f"/api/uploads/{upload_id(path)}")
    assert response.status_code == 204
    assert stored_objects(app, upload_id(path)) == {}
    assert client.get(f"/api/uploads/{upload_id(path)}").status_code == 410
    assert client.head(path, headers=TUS).status_code == 410
    assert client.get("/api/uploads").get_json()["total"] == 0
    again = client.delete(f"/api/uploads/{upload_id(path)}")
    assert again.status_code == 410
    assert again.get_json()["error"]["code"] == "gone"


def test_delete_unknown_upload_is_404(client: Any) -> None:
    response = client.delete("/api/uploads/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert response.is_json


# --- health -----------------------------------------------------------------------------------


def test_health(client: Any) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"redis": "ok", "storage": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"
    assert "Retry-After" not in response.headers


def test_health_is_503_when_redis_is_unreachable(make_settings: Any) -> None:
    broken: redis.Redis = connect(f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(make_settings(), redis_client=broken)
    try:
        response = app.test_client().get("/api/health")
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["checks"]["redis"] != "ok"
        assert body["checks"]["storage"] == "ok"
    finally:
        _teardown(app)


def test_api_is_503_json_when_redis_is_unreachable(make_settings: Any) -> None:
    broken: redis.Redis = connect(f"redis://127.0.0.1:{closed_port()}/0")
    app = create_app(make_settings(), redis_client=broken)
    try:
        client = app.test_client()
        for response in (
            client.get("/api/uploads"),
            client.get("/api/uploads/0123456789abcdef0123456789abcdef"),
        ):
            assert response.status_code == 503
            assert response.get_json()["error"]["code"] == "backend-unavailable"
    finally:
        _teardown(app)


def _teardown(app: Any) -> None:
    components = app.extensions["tusserver"]
    components.keeper.stop()
    if components.store.name == "s3":
        from tests.support.s3 import drop_bucket

        drop_bucket(components.store)


def test_oversized_json_body_is_413_without_being_read(client: Any) -> None:
    path = create(client, 3, filename="keep.txt")
    body = b'{"filename": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.patch(
        f"/api/uploads/{upload_id(path)}", data=body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["message"]
    assert client.get(f"/api/uploads/{upload_id(path)}").get_json()["filename"] == "keep.txt"


def test_upload_bodies_are_not_limited_by_the_api_limit(client: Any) -> None:
    data = b"u" * (200 * 1024)
    path = create(client, len(data))
    assert patch(client, path, 0, data).status_code == 204
    assert client.get(path).data == data
