"""DELETE (termination): the upload and its bytes are gone, and clients are told so."""

from __future__ import annotations

from typing import Any

from tests.support.tus import (
    TUS,
    all_stored,
    create,
    head,
    patch,
    stored_objects,
    upload_id,
)

BODY = bytes(range(256)) * 400  # 100 KiB: two S3 parts

ABSENT = "0123456789abcdef0123456789abcdef"


def test_terminate_an_incomplete_upload(app: Any, client: Any) -> None:
    path = create(client, len(BODY) + 1)
    patch(client, path, 0, BODY)
    assert stored_objects(app, upload_id(path))
    response = client.delete(path, headers=TUS)
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert stored_objects(app, upload_id(path)) == {}
    assert head(client, path).status_code == 410
    assert patch(client, path, len(BODY), b"x").status_code == 410
    assert client.get(path).status_code == 410


def test_terminate_a_complete_upload(app: Any, client: Any) -> None:
    path = create(client, len(BODY))
    patch(client, path, 0, BODY)
    assert client.delete(path, headers=TUS).status_code == 204
    assert head(client, path).status_code == 410
    assert client.get(path).status_code == 410
    assert client.head(path).status_code == 410  # plain HEAD (download headers)
    assert stored_objects(app, upload_id(path)) == {}


def test_terminated_upload_answers_410(client: Any) -> None:
    path = create(client, 10)
    client.delete(path, headers=TUS)
    assert head(client, path).status_code == 410
    assert patch(client, path, 0, b"abc").status_code == 410
    assert client.delete(path, headers=TUS).status_code == 410


def test_terminated_upload_leaves_the_listing(client: Any) -> None:
    path = create(client, 10)
    other = create(client, 10)
    client.delete(path, headers=TUS)
    ids = [u["id"] for u in client.get("/api/uploads").get_json()["uploads"]]
    assert ids == [upload_id(other)]


def test_terminate_only_touches_its_own_upload(app: Any, client: Any) -> None:
    keep = create(client, 3)
    patch(client, keep, 0, b"abc")
    path = create(client, 3)
    patch(client, path, 0, b"xyz")
    client.delete(path, headers=TUS)
    assert client.get(keep).data == b"abc"
    assert stored_objects(app, upload_id(keep))


def test_terminate_unknown_upload_is_404(client: Any) -> None:
    assert client.delete(f"/files/{ABSENT}", headers=TUS).status_code == 404


def test_terminate_without_tus_resumable_is_412_and_keeps_the_upload(client: Any) -> None:
    path = create(client, 3)
    response = client.delete(path)
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert head(client, path).status_code == 200


def test_terminated_with_gone_ttl_zero_answers_404(make_app: Any) -> None:
    client = make_app(gone_ttl=0).test_client()
    path = create(client, 3)
    assert client.delete(path, headers=TUS).status_code == 204
    assert head(client, path).status_code == 404


def test_terminate_removes_every_byte_from_the_store(app: Any, client: Any) -> None:
    """Also the leftovers of writes that were never committed (a rejected checksum)."""
    path = create(client, len(BODY) * 2)
    patch(client, path, 0, BODY)
    patch(client, path, len(BODY), BODY, Upload_Checksum="sha1 " + "A" * 27 + "=")
    client.delete(path, headers=TUS)
    assert all_stored(app) == {}
