"""HEAD with Tus-Resumable: where an upload stands (offset, length, metadata, concat)."""

from __future__ import annotations

from typing import Any

from tests.support.tus import TUS, create, head, patch

ABSENT = "0123456789abcdef0123456789abcdef"


def test_head_of_a_new_upload(client: Any) -> None:
    path = create(client, 100)
    response = head(client, path)
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == "0"
    assert response.headers["Upload-Length"] == "100"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == b""


def test_head_follows_the_offset(client: Any) -> None:
    path = create(client, 100_000)
    patch(client, path, 0, b"a" * 70_000)
    assert head(client, path).headers["Upload-Offset"] == "70000"
    patch(client, path, 70_000, b"b" * 30_000)
    response = head(client, path)
    assert response.headers["Upload-Offset"] == "100000"
    assert response.headers["Upload-Length"] == "100000"


def test_head_of_a_deferred_upload(client: Any) -> None:
    path = create(client, None)
    response = head(client, path)
    assert response.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in response.headers


def test_head_of_an_unknown_upload_is_404_without_body(client: Any) -> None:
    response = head(client, f"/files/{ABSENT}")
    assert response.status_code == 404
    assert response.data == b""
    assert response.headers["Tus-Resumable"] == "1.0.0"


def test_head_with_bad_tus_resumable_is_412(client: Any) -> None:
    path = create(client, 10)
    response = client.head(path, headers={"Tus-Resumable": "0.2.2"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.data == b""


def test_head_does_not_change_anything(client: Any) -> None:
    path = create(client, 10)
    patch(client, path, 0, b"12345")
    first = head(client, path)
    second = head(client, path)
    assert first.headers["Upload-Offset"] == second.headers["Upload-Offset"] == "5"
    assert first.headers["Upload-Expires"] == second.headers["Upload-Expires"]


def test_head_of_a_complete_upload_has_no_expiry(client: Any) -> None:
    path = create(client, 3)
    patch(client, path, 0, b"abc")
    response = head(client, path)
    assert response.headers["Upload-Offset"] == "3"
    assert "Upload-Expires" not in response.headers


def test_head_needs_no_lock(app: Any, client: Any) -> None:
    """A HEAD while a write holds the upload's lock answers at once with the committed offset."""
    path = create(client, 10)
    patch(client, path, 0, b"1234")
    locks = app.extensions["tusserver"].locks
    lock = locks.acquire(path.rsplit("/", 1)[-1], wait=0)
    try:
        response = client.head(path, headers=TUS)
        assert response.status_code == 200
        assert response.headers["Upload-Offset"] == "4"
    finally:
        lock.release()
