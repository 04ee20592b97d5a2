"""Small files through JSON: `POST /api/files` and `GET /api/uploads/<id>/content`, on both stores.

A JSON upload must be indistinguishable from a finished tus upload (same download, same state,
same hooks), and every refusal (too large, bad base64, malformed JSON) must leave nothing behind:
no state, no listing entry, no stored bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask import Flask

from tests.support.tus import TUS, all_stored, create, patch, upload_id

DATA = bytes(range(256)) * 300 + b"tail"  # 76,804 bytes: several read chunks and S3 parts


def post_file(client: Any, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/api/files", data=raw, headers={"Content-Type": "application/json", **headers}
    )


def nothing_left(app: Flask, client: Any) -> None:
    assert client.get("/api/uploads").get_json()["total"] == 0
    assert all_stored(app) == {}


def test_base64_round_trip_is_a_complete_upload(app: Flask, client: Any) -> None:
    body = {
        "filename": "data.bin",
        "content_base64": base64.b64encode(DATA).decode(),
        "filetype": "application/octet-stream",
        "tags": ["raw", "2026"],
    }
    response = post_file(client, body)
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["size"] == len(DATA) and made["offset"] == len(DATA) and made["complete"]
    assert made["filename"] == "data.bin"
    assert made["metadata"]["tags"] == "raw,2026"
    assert response.headers["Location"] == made["url"]
    # The same answer as the upload's own JSON, and the same bytes at the tus URL.
    assert client.get(f"/api/uploads/{made['id']}").get_json() == made
    download = client.get(made["url"])
    assert download.status_code == 200 and download.data == DATA
    head = client.head(made["url"], headers=TUS)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(DATA))


def test_content_may_come_before_the_filename(client: Any) -> None:
    encoded = base64.b64encode(b"hi").decode()
    raw = '{"content_base64": "' + encoded + '", "filename": "late.txt"}'
    made = post_file(client, raw.encode()).get_json()
    assert made["filename"] == "late.txt"
    assert client.get(made["url"]).data == b"hi"


def test_text_is_stored_as_utf8(client: Any) -> None:
    text = 'Grüße, 世界 😀\n"quoted" \\ back\tslash\u2028'
    response = post_file(client, {"filename": "note.txt", "text": text})
    assert response.status_code == 201
    made = response.get_json()
    assert made["filetype"].startswith("text/plain")
    assert client.get(made["url"]).data == text.encode()
    content = client.get(f"/api/uploads/{made['id']}/content?encoding=text").get_json()
    assert content["text"] == text


def test_empty_file(client: Any) -> None:
    made = post_file(client, {"filename": "empty", "content_base64": ""}).get_json()
    assert made["size"] == 0 and made["complete"]
    assert client.get(made["url"]).data == b""


def test_content_endpoint_gives_base64_back(client: Any) -> None:
    made = post_file(
        client, {"filename": "d.bin", "content_base64": base64.b64encode(DATA).decode()}
    ).get_json()
    response = client.get(f"/api/uploads/{made['id']}/content?encoding=base64")
    assert response.status_code == 200 and response.is_json
    content = response.get_json()
    assert content["id"] == made["id"] and content["size"] == len(DATA)
    assert content["filename"] == "d.bin"
    assert base64.b64decode(content["content_base64"]) == DATA


def test_content_of_a_tus_upload_and_of_an_incomplete_one(client: Any) -> None:
    done = create(client, 5, filename="five.txt")
    assert patch(client, done, 0, b"hello").status_code == 204
    content = client.get(f"/api/uploads/{upload_id(done)}/content").get_json()
    assert base64.b64decode(content["content_base64"]) == b"hello"
    running = create(client, 10)
    patch(client, running, 0, b"abc")
    response = client.get(f"/api/uploads/{upload_id(running)}/content")
    assert response.status_code == 409


def test_text_encoding_of_binary_is_refused(client: Any) -> None:
    made = post_file(
        client, {"filename": "b", "content_base64": base64.b64encode(b"\xff\xfe").decode()}
    ).get_json()
    response = client.get(f"/api/uploads/{made['id']}/content?encoding=text")
    assert response.status_code == 400
    assert "base64" in response.get_json()["error"]["message"]


def test_above_the_limit_is_413_and_leaves_nothing(make_app: Any) -> None:
    app = make_app(json_upload_max=1000)
    client = app.test_client()
    fits = post_file(
        client, {"filename": "f", "content_base64": base64.b64encode(b"x" * 1000).decode()}
    )
    assert fits.status_code == 201
    assert client.delete(fits.get_json()["url"], headers=TUS).status_code == 204
    response = post_file(
        client, {"filename": "f", "content_base64": base64.b64encode(b"x" * 1001).decode()}
    )
    assert response.status_code == 413
    assert "tus" in response.get_json()["error"]["message"]
    nothing_left(app, client)


def test_a_huge_content_length_is_refused_before_reading(make_app: Any) -> None:
    app = make_app(json_upload_max=1000)
    client = app.test_client()
    body = json.dumps({"filename": "f", "text": "x" * 200_000}).encode()
    response = post_file(client, body)
    assert response.status_code == 413
    nothing_left(app, client)


@pytest.mark.parametrize(
    "content",
    ["not base64!", "QUJD=", "QQ==QUJD", "QUJDR", "QUJD\u00e9"],
    ids=["alphabet", "bad-padding", "data-after-padding", "length", "non-ascii"],
)
def test_bad_base64_is_400_and_leaves_nothing(app: Flask, client: Any, content: str) -> None:
    response = post_file(client, {"filename": "f", "content_base64": "QUJD" * 5000 + content})
    assert response.status_code == 400
    assert "base64" in response.get_json()["error"]["message"]
    nothing_left(app, client)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"filename": "f"}',
        b'{"content_base64": "QUJD"}',
        b'{"filename": "f", "content_base64": "QUJD", "text": "x"}',
        b'{"filename": "f", "content_base64": "QUJD", "colour": "red"}',
        b'{"filename": "f", "content_base64": "QUJD"',
        b'{"filename": "f", "content_base64": "QUJD"} trailing',
        b'{"filename": "a/b", "content_base64": "QUJD"}',
        b'{"filename": "f", "text": "\\ud800"}',
        b'{"filename": "f", "text": "bad \\x escape"}',
        b'["filename", "f"]',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_are_400_and_leave_nothing(app: Flask, client: Any, raw: bytes) -> None:
    response = post_file(client, raw)
    assert response.status_code == 400, response.data
    nothing_left(app, client)


def test_json_content_type_is_required(client: Any) -> None:
    response = client.post("/api/files", data=b'{"filename": "f", "text": "x"}')
    assert response.status_code == 415


def test_hooks_fire_as_for_a_finished_tus_upload(make_app: Any) -> None:
    from tests.support import python_hooks

    app = make_app(hooks_python="tests.support.python_hooks:record")
    client = app.test_client()
    python_hooks.EVENTS.clear()
    made = post_file(client, {"filename": "hooked.txt", "text": "abc"}).get_json()
    for receiver in app.extensions["tusserver"].service.hooks.hooks:
        if hasattr(receiver, "flush"):
            assert receiver.flush()
    events = [event for event, uid in python_hooks.EVENTS if uid == made["id"]]
    assert events == ["pre-create", "post-create", "post-finish"]
    assert made["metadata"]["seen"] == "1"  # what pre-create returned was kept
