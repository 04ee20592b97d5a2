"""POST /files/: creation, creation-with-upload, defer-length, metadata, max size, overrides."""

from __future__ import annotations

import base64
import re
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from tests.support.tus import (
    OCTET,
    TUS,
    all_stored,
    create,
    digest_header,
    head,
    metadata_header,
    patch,
    path_of,
    send_chunked,
    stored_data_size,
    upload_id,
)

LOCATION = re.compile(r"http://localhost/files/([0-9a-f]{32})")
BIG = bytes(range(256)) * 600  # 150 KiB: crosses two 64 KiB S3 part boundaries


def listed(client: Any) -> int:
    return client.get("/api/uploads").get_json()["total"]


# --- creation -------------------------------------------------------------------------------------


def test_create_answers_201_with_an_absolute_location(client: Any) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Length": "100"})
    assert response.status_code == 201
    assert LOCATION.fullmatch(response.headers["Location"])
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Offset"] == "0"
    assert response.data == b""
    state = head(client, path_of(response.headers["Location"]))
    assert state.status_code == 200
    assert state.headers["Upload-Offset"] == "0"
    assert state.headers["Upload-Length"] == "100"


def test_every_creation_gets_a_new_id(client: Any) -> None:
    ids = {upload_id(create(client, 5)) for _ in range(5)}
    assert len(ids) == 5


def test_create_without_length_or_defer_is_400_and_creates_nothing(client: Any) -> None:
    response = client.post("/files/", headers=TUS)
    assert response.status_code == 400
    assert "Upload-Length" in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert listed(client) == 0


def test_zero_length_upload_is_complete_at_once(client: Any) -> None:
    path = create(client, 0)
    state = head(client, path)
    assert state.headers["Upload-Offset"] == "0"
    assert state.headers["Upload-Length"] == "0"
    assert "Upload-Expires" not in state.headers
    download = client.get(path)
    assert download.status_code == 200
    assert download.data == b""


# --- creation-with-upload ---------------------------------------------------------------------


def test_creation_with_upload_stores_the_body(client: Any) -> None:
    response = client.post(
        "/files/", data=BIG, headers={**TUS, **OCTET, "Upload-Length": str(len(BIG))}
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == str(len(BIG))
    path = path_of(response.headers["Location"])
    assert head(client, path).headers["Upload-Offset"] == str(len(BIG))
    assert client.get(path).data == BIG


def test_creation_with_partial_upload_then_patch_the_rest(client: Any) -> None:
    response = client.post(
        "/files/", data=BIG[:70000], headers={**TUS, **OCTET, "Upload-Length": str(len(BIG))}
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "70000"
    path = path_of(response.headers["Location"])
    assert patch(client, path, 70000, BIG[70000:]).status_code == 204
    assert client.get(path).data == BIG


def test_creation_with_upload_chunked_body(client: Any) -> None:
    response = send_chunked(
        client,
        "POST",
        "/files/",
        BIG,
        **TUS,
        **OCTET,
        Upload_Length=str(len(BIG)),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["Upload-Offset"] == str(len(BIG))
    assert client.get(path_of(response.headers["Location"])).data == BIG


def test_creation_with_upload_needs_the_offset_content_type(client: Any) -> None:
    response = client.post(
        "/files/",
        data=b"hello",
        headers={**TUS, "Upload-Length": "5", "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert "Location" not in response.headers
    assert listed(client) == 0


def test_creation_with_empty_body_and_content_type_is_plain_creation(client: Any) -> None:
    response = client.post("/files/", data=b"", headers={**TUS, **OCTET, "Upload-Length": "5"})
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "0"


def test_creation_with_upload_body_longer_than_the_upload_creates_nothing(
    app: Any, client: Any
) -> None:
    """A Content-Length past Upload-Length is refused before anything is created."""
    response = client.post(
        "/files/", data=b"x" * 4096, headers={**TUS, **OCTET, "Upload-Length": "1024"}
    )
    assert response.status_code == 413
    assert "Location" not in response.headers
    assert "4096" in response.get_data(as_text=True)
    assert listed(client) == 0
    assert all_stored(app) == {}


def test_creation_with_upload_body_past_max_size_on_deferred_length_creates_nothing(
    make_app: Any,
) -> None:
    app = make_app(max_size=1000)
    client = app.test_client()
    response = client.post(
        "/files/", data=b"x" * 1001, headers={**TUS, **OCTET, "Upload-Defer-Length": "1"}
    )
    assert response.status_code == 413
    assert "Location" not in response.headers
    assert listed(client) == 0


def test_creation_with_upload_chunked_body_too_long_stores_nothing(app: Any, client: Any) -> None:
    response = send_chunked(client, "POST", "/files/", BIG, **TUS, **OCTET, Upload_Length="70000")
    assert response.status_code == 413
    path = path_of(response.headers["Location"])
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert stored_data_size(app, upload_id(path)) == 0


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_creation_with_upload_and_good_checksum(client: Any, algorithm: str) -> None:
    response = client.post(
        "/files/",
        data=BIG,
        headers={
            **TUS,
            **OCTET,
            "Upload-Length": str(len(BIG)),
            "Upload-Checksum": digest_header(algorithm, BIG),
        },
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == str(len(BIG))


def test_creation_with_upload_and_bad_checksum_keeps_nothing(app: Any, client: Any) -> None:
    response = client.post(
        "/files/",
        data=BIG,
        headers={
            **TUS,
            **OCTET,
            "Upload-Length": str(len(BIG)),
            "Upload-Checksum": digest_header("sha256", b"something else"),
        },
    )
    assert response.status_code == 460
    path = path_of(response.headers["Location"])
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert stored_data_size(app, upload_id(path)) == 0


# --- defer-length -----------------------------------------------------------------------------


def test_defer_length(client: Any) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Defer-Length": "1"})
    assert response.status_code == 201
    state = head(client, path_of(response.headers["Location"]))
    assert state.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in state.headers
    assert state.headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("value", ["0", "2", "true", "", "1 1"])
def test_defer_length_other_than_1_is_400(client: Any, value: str) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Defer-Length": value})
    assert response.status_code == 400
    assert listed(client) == 0


def test_length_and_defer_length_together_is_400(client: Any) -> None:
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "5", "Upload-Defer-Length": "1"}
    )
    assert response.status_code == 400
    assert listed(client) == 0


def test_deferred_creation_with_upload(client: Any) -> None:
    response = client.post(
        "/files/", data=b"abc", headers={**TUS, **OCTET, "Upload-Defer-Length": "1"}
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "3"
    state = head(client, path_of(response.headers["Location"]))
    assert state.headers["Upload-Defer-Length"] == "1"


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_round_trips_through_head(client: Any) -> None:
    path = create(client, 3, filename="résumé 日本.txt", filetype="text/plain")
    sent = head(client, path).headers["Upload-Metadata"]
    pairs = dict(item.split(" ") for item in sent.split(","))
    assert base64.b64decode(pairs["filename"]).decode() == "résumé 日本.txt"
    assert base64.b64decode(pairs["filetype"]).decode() == "text/plain"


def test_metadata_key_without_value(client: Any) -> None:
    path = create(client, 3, headers={"Upload-Metadata": "is_confidential,name " + "YQ=="})
    metadata = head(client, path).headers["Upload-Metadata"].split(",")
    assert "is_confidential" in metadata
    assert "name YQ==" in metadata


def test_no_metadata_means_no_metadata_header(client: Any) -> None:
    assert "Upload-Metadata" not in head(client, create(client, 3)).headers


def test_metadata_with_newlines_never_reaches_a_header_raw(client: Any) -> None:
    path = create(client, 1, filename="evil\r\nSet-Cookie: x=1")
    state = head(client, path)
    assert "Set-Cookie" not in state.headers
    value = dict(i.split(" ") for i in state.headers["Upload-Metadata"].split(","))["filename"]
    assert base64.b64decode(value) == b"evil\r\nSet-Cookie: x=1"
    patch(client, path, 0, b"x")
    download = client.get(path)
    assert "Set-Cookie" not in download.headers
    assert "\n" not in download.headers["Content-Disposition"]


def test_invalid_metadata_is_400(client: Any) -> None:
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": "filename ***"}
    )
    assert response.status_code == 400
    assert listed(client) == 0


def test_metadata_header_helper_matches_server_encoding(client: Any) -> None:
    header = metadata_header(filename="a.txt")
    path = create(client, 1, headers={"Upload-Metadata": header})
    assert head(client, path).headers["Upload-Metadata"] == header


# --- maximum size -----------------------------------------------------------------------------


def test_upload_length_above_max_size_is_413(make_app: Any) -> None:
    client = make_app(max_size=1000).test_client()
    response = client.post("/files/", headers={**TUS, "Upload-Length": "1001"})
    assert response.status_code == 413
    assert "Location" not in response.headers
    assert listed(client) == 0


def test_upload_length_equal_to_max_size_is_accepted(make_app: Any) -> None:
    client = make_app(max_size=1000).test_client()
    path = create(client, 1000)
    assert patch(client, path, 0, b"x" * 1000).status_code == 204


# --- expiry on creation -------------------------------------------------------------------------


def test_creation_announces_upload_expires(client: Any) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    expires = parsedate_to_datetime(response.headers["Upload-Expires"])
    assert expires.tzinfo is not None


# --- X-HTTP-Method-Override ---------------------------------------------------------------------


def test_method_override_patch(client: Any) -> None:
    path = create(client, 5)
    response = client.post(
        path,
        data=b"hello",
        headers={**TUS, **OCTET, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "5"
    assert client.get(path).data == b"hello"


def test_method_override_delete(client: Any) -> None:
    path = create(client, 5)
    response = client.post(path, headers={**TUS, "X-HTTP-Method-Override": "delete"})
    assert response.status_code == 204
    assert head(client, path).status_code in (404, 410)


def test_method_override_head(client: Any) -> None:
    path = create(client, 5)
    response = client.post(path, headers={**TUS, "X-HTTP-Method-Override": "HEAD"})
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == "0"
    assert response.headers["Upload-Length"] == "5"
    assert response.headers["Content-Length"] == "0"
    assert response.data == b""


def test_method_override_head_of_a_complete_upload_announces_an_empty_body(client: Any) -> None:
    """The download HEAD's Content-Length (the file size) would promise a body a POST never gets."""
    path = create(client, 5)
    assert patch(client, path, 0, b"hello").status_code == 204
    response = client.post(path, headers={"X-HTTP-Method-Override": "HEAD"})
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "ETag" in response.headers
    assert response.data == b""
    assert client.head(path).headers["Content-Length"] == "5"  # a real HEAD is unchanged


def test_method_override_only_applies_to_post(client: Any) -> None:
    path = create(client, 5)
    response = client.get(path, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert response.status_code == 409  # the GET of an incomplete upload, not a DELETE
    assert head(client, path).status_code == 200


def test_unknown_method_override_is_a_plain_post(client: Any) -> None:
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "5", "X-HTTP-Method-Override": "BREW"}
    )
    assert response.status_code == 201


def test_endpoint_without_trailing_slash_creates_too(client: Any) -> None:
    response = client.post("/files", headers={**TUS, "Upload-Length": "3"})
    assert response.status_code == 201
    assert "/files/" in response.headers["Location"]
    assert client.options("/files").status_code == 204
