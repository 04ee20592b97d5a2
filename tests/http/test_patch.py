"""PATCH: appending bytes at the right offset, and refusing everything else without a trace."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest

from tests.support.tus import (
    OCTET,
    TUS,
    Trickle,
    create,
    digest_header,
    head,
    patch,
    patch_chunked,
    send_raw,
    stored_data_size,
    stored_objects,
    upload_id,
)

BIG = hashlib.sha256(b"seed").digest() * 5000  # 160,000 bytes: two and a half 64 KiB S3 parts
ABSENT = "0123456789abcdef0123456789abcdef"


def offset_of(client: Any, path: str) -> int:
    return int(head(client, path).headers["Upload-Offset"])


# --- appending --------------------------------------------------------------------------------


def test_patch_appends_and_reports_the_new_offset(client: Any) -> None:
    path = create(client, 10)
    response = patch(client, path, 0, b"01234")
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "5"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.data == b""
    response = patch(client, path, 5, b"56789")
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "10"
    assert client.get(path).data == b"0123456789"


def test_many_patches_across_part_boundaries(client: Any) -> None:
    path = create(client, len(BIG))
    offset = 0
    for size in (1, 65535, 2, 70000, 24462):
        response = patch(client, path, offset, BIG[offset : offset + size])
        assert response.status_code == 204, response.get_data(as_text=True)
        offset += size
        assert response.headers["Upload-Offset"] == str(offset)
    assert offset == len(BIG)
    assert client.get(path).data == BIG


def test_empty_patch_changes_nothing(client: Any) -> None:
    path = create(client, 10)
    patch(client, path, 0, b"abc")
    response = patch(client, path, 3, b"")
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "3"


def test_content_type_parameters_are_accepted(client: Any) -> None:
    path = create(client, 3)
    response = patch(client, path, 0, b"abc", Content_Type="Application/Offset+Octet-Stream; x=1")
    assert response.status_code == 204


# --- offset mismatch --------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", [0, 3, 6, 1000])
def test_wrong_offset_is_409_with_the_current_offset(app: Any, client: Any, wrong: int) -> None:
    path = create(client, 10)
    patch(client, path, 0, b"12345")
    response = patch(client, path, wrong, b"abcde")
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "5"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert offset_of(client, path) == 5
    assert stored_data_size(app, upload_id(path)) == 5
    assert patch(client, path, 5, b"67890").status_code == 204
    assert client.get(path).data == b"1234567890"


def test_missing_upload_offset_is_400(client: Any) -> None:
    path = create(client, 10)
    response = client.patch(path, data=b"abc", headers={**TUS, **OCTET})
    assert response.status_code == 400
    assert "Upload-Offset" in response.get_data(as_text=True)
    assert offset_of(client, path) == 0


# --- content type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", [None, "application/octet-stream", "text/plain", "application/offset"]
)
def test_wrong_content_type_is_415(app: Any, client: Any, content_type: str | None) -> None:
    path = create(client, 10)
    headers = {**TUS, "Upload-Offset": "0"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.patch(path, data=b"abc", headers=headers)
    assert response.status_code == 415
    assert offset_of(client, path) == 0
    assert stored_data_size(app, upload_id(path)) == 0


# --- checksums --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_good_checksum_is_accepted(client: Any, algorithm: str) -> None:
    path = create(client, len(BIG))
    response = patch(client, path, 0, BIG, Upload_Checksum=digest_header(algorithm, BIG))
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == str(len(BIG))
    assert client.get(path).data == BIG


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_bad_checksum_is_460_and_nothing_is_committed(
    app: Any, client: Any, algorithm: str
) -> None:
    path = create(client, len(BIG) + 10)
    patch(client, path, 0, b"0123456789")
    before = stored_objects(app, upload_id(path))
    response = patch(client, path, 10, BIG, Upload_Checksum=digest_header(algorithm, b"other"))
    assert response.status_code == 460
    assert offset_of(client, path) == 10
    assert stored_objects(app, upload_id(path)) == before
    # The client can send the same bytes again with the right checksum.
    response = patch(client, path, 10, BIG, Upload_Checksum=digest_header(algorithm, BIG))
    assert response.status_code == 204
    assert client.get(path).data == b"0123456789" + BIG


def test_checksum_algorithm_name_is_case_insensitive(client: Any) -> None:
    path = create(client, 3)
    value = digest_header("sha1", b"abc").replace("sha1", "SHA1")
    assert patch(client, path, 0, b"abc", Upload_Checksum=value).status_code == 204


@pytest.mark.parametrize("value", ["crc32 AAAAAA==", "sha512 " + "A" * 86 + "==", "blake2b x"])
def test_unsupported_checksum_algorithm_is_400(app: Any, client: Any, value: str) -> None:
    path = create(client, 3)
    response = patch(client, path, 0, b"abc", Upload_Checksum=value)
    assert response.status_code == 400
    assert offset_of(client, path) == 0
    assert stored_data_size(app, upload_id(path)) == 0


@pytest.mark.parametrize("value", ["sha1", "sha1 !!!!", "sha1 YWJj", "sha1  " + "A" * 28])
def test_malformed_checksum_is_400(client: Any, value: str) -> None:
    path = create(client, 3)
    response = patch(client, path, 0, b"abc", Upload_Checksum=value)
    assert response.status_code == 400
    assert offset_of(client, path) == 0


def test_checksum_of_a_chunked_body(client: Any) -> None:
    path = create(client, len(BIG))
    response = patch_chunked(client, path, 0, BIG, Upload_Checksum=digest_header("md5", BIG))
    assert response.status_code == 204
    response = head(client, path)
    assert response.headers["Upload-Offset"] == str(len(BIG))


def test_checksum_of_a_cut_short_body_never_matches(app: Any, client: Any) -> None:
    path = create(client, 100)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    headers["Upload-Checksum"] = digest_header("sha1", b"x" * 100)
    response = send_raw(client, "PATCH", path, io.BytesIO(b"x" * 40), headers, content_length=100)
    assert response.status_code == 460
    assert offset_of(client, path) == 0
    assert stored_data_size(app, upload_id(path)) == 0


# --- sizes ------------------------------------------------------------------------------------


def test_body_longer_than_the_upload_is_413_and_stores_nothing(app: Any, client: Any) -> None:
    path = create(client, 100_000)
    patch(client, path, 0, b"a" * 10)
    response = patch(client, path, 10, BIG)
    assert response.status_code == 413
    assert offset_of(client, path) == 10
    assert stored_data_size(app, upload_id(path)) == 10


def test_patch_to_a_complete_upload(app: Any, client: Any) -> None:
    path = create(client, 5)
    response = patch(client, path, 0, b"hello")
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "5"
    assert "Upload-Expires" not in response.headers
    # More bytes do not fit, whatever the offset.
    assert patch(client, path, 5, b"!").status_code == 413
    assert patch(client, path, 0, b"HELLO").status_code == 409
    assert client.get(path).data == b"hello"
    # An empty PATCH at the end is harmless.
    assert patch(client, path, 5, b"").status_code == 204


# --- chunked bodies ---------------------------------------------------------------------------


def test_chunked_body(client: Any) -> None:
    path = create(client, len(BIG))
    response = patch_chunked(client, path, 0, BIG[:100_000])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["Upload-Offset"] == "100000"
    response = patch_chunked(client, path, 100_000, BIG[100_000:])
    assert response.headers["Upload-Offset"] == str(len(BIG))
    assert client.get(path).data == BIG


def test_chunked_body_exactly_filling_the_upload(client: Any) -> None:
    path = create(client, 70_000)
    response = patch_chunked(client, path, 0, BIG[:70_000])
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "70000"


def test_chunked_body_longer_than_the_upload_is_413_and_stores_nothing(
    app: Any, client: Any
) -> None:
    path = create(client, 100_000)
    patch(client, path, 0, b"z" * 10)
    response = patch_chunked(client, path, 10, BIG)
    assert response.status_code == 413
    assert offset_of(client, path) == 10
    assert stored_data_size(app, upload_id(path)) == 10
    assert client.get(path).status_code == 409


def test_chunked_body_on_a_deferred_upload_past_max_size_is_413(make_app: Any) -> None:
    app = make_app(max_size=100_000)
    client = app.test_client()
    path = create(client, None)
    response = patch_chunked(client, path, 0, BIG)
    assert response.status_code == 413
    assert offset_of(client, path) == 0
    assert stored_data_size(app, upload_id(path)) == 0


# --- a client that goes away ------------------------------------------------------------------


def test_a_short_body_commits_what_arrived(client: Any) -> None:
    path = create(client, 100_000)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(
        client, "PATCH", path, io.BytesIO(BIG[:70_000]), headers, content_length=100_000
    )
    assert response.status_code == 204
    assert offset_of(client, path) == 70_000
    assert patch(client, path, 70_000, BIG[70_000:100_000]).status_code == 204
    assert client.get(path).data == BIG[:100_000]


def test_a_connection_reset_commits_what_arrived(client: Any) -> None:
    path = create(client, 100_000)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    stream = Trickle(BIG[:100_000], step=5000, fail_after=80_000)
    send_raw(client, "PATCH", path, stream, headers, content_length=100_000)
    assert offset_of(client, path) == 80_000
    assert patch(client, path, 80_000, BIG[80_000:100_000]).status_code == 204
    assert client.get(path).data == BIG[:100_000]


# --- deferred length --------------------------------------------------------------------------


def test_length_declared_on_patch(client: Any) -> None:
    path = create(client, None)
    assert patch(client, path, 0, b"abc").status_code == 204
    response = patch(client, path, 3, b"def", Upload_Length="10")
    assert response.status_code == 204
    state = head(client, path)
    assert state.headers["Upload-Length"] == "10"
    assert "Upload-Defer-Length" not in state.headers
    assert patch(client, path, 6, b"ghij").status_code == 204
    assert client.get(path).data == b"abcdefghij"


def test_declaring_the_length_reached_completes_the_upload(client: Any) -> None:
    path = create(client, None)
    patch(client, path, 0, b"abc")
    assert client.get(path).status_code == 409
    response = patch(client, path, 3, b"", Upload_Length="3")
    assert response.status_code == 204
    assert "Upload-Expires" not in response.headers
    assert client.get(path).data == b"abc"


def test_same_length_again_is_fine_a_different_one_is_400(client: Any) -> None:
    path = create(client, 10)
    assert patch(client, path, 0, b"abc", Upload_Length="10").status_code == 204
    response = patch(client, path, 3, b"def", Upload_Length="11")
    assert response.status_code == 400
    assert offset_of(client, path) == 3
    assert head(client, path).headers["Upload-Length"] == "10"


def test_declared_length_below_the_offset_is_400(client: Any) -> None:
    path = create(client, None)
    patch(client, path, 0, b"abcdef")
    response = patch(client, path, 6, b"", Upload_Length="5")
    assert response.status_code == 400
    assert head(client, path).headers["Upload-Defer-Length"] == "1"


def test_declared_length_above_max_size_is_413(make_app: Any) -> None:
    client = make_app(max_size=1000).test_client()
    path = create(client, None)
    response = patch(client, path, 0, b"abc", Upload_Length="1001")
    assert response.status_code == 413
    state = head(client, path)
    assert state.headers["Upload-Defer-Length"] == "1"
    assert state.headers["Upload-Offset"] == "0"


def test_declared_length_with_wrong_offset_changes_nothing(client: Any) -> None:
    path = create(client, None)
    patch(client, path, 0, b"abc")
    response = patch(client, path, 0, b"abc", Upload_Length="10")
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "3"
    state = head(client, path)
    assert state.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in state.headers


def test_declared_length_shorter_than_the_body_changes_nothing(app: Any, client: Any) -> None:
    path = create(client, None)
    response = patch(client, path, 0, b"0123456789", Upload_Length="5")
    assert response.status_code == 413
    state = head(client, path)
    assert state.headers["Upload-Defer-Length"] == "1"
    assert state.headers["Upload-Offset"] == "0"
    assert stored_data_size(app, upload_id(path)) == 0
    # The client may still declare any length later.
    assert patch(client, path, 0, b"0123456789", Upload_Length="10").status_code == 204


def test_declared_length_with_a_bad_checksum_changes_nothing(client: Any) -> None:
    path = create(client, None)
    response = patch(
        client, path, 0, b"abc", Upload_Length="3", Upload_Checksum=digest_header("sha1", b"x")
    )
    assert response.status_code == 460
    state = head(client, path)
    assert state.headers["Upload-Defer-Length"] == "1"
    assert state.headers["Upload-Offset"] == "0"


# --- what may not be patched ------------------------------------------------------------------


def test_patch_to_an_unknown_upload_is_404(client: Any) -> None:
    assert patch(client, f"/files/{ABSENT}", 0, b"abc").status_code == 404


def test_patch_to_a_final_upload_is_403(client: Any) -> None:
    partial = create(client, 3, headers={"Upload-Concat": "partial"})
    patch(client, partial, 0, b"abc")
    response = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{partial}"})
    assert response.status_code == 201
    final = "/files/" + upload_id(response.headers["Location"])
    response = patch(client, final, 3, b"more")
    assert response.status_code == 403
    response = patch(client, final, 0, b"")
    assert response.status_code == 403
    assert client.get(final).data == b"abc"


def test_patch_without_tus_resumable_is_412(client: Any) -> None:
    path = create(client, 3)
    response = client.patch(path, data=b"abc", headers={**OCTET, "Upload-Offset": "0"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert offset_of(client, path) == 0


# --- locking ----------------------------------------------------------------------------------


def test_patch_to_an_upload_locked_by_a_stuck_writer_is_423(make_app: Any) -> None:
    app = make_app(lock_wait=0.2)
    client = app.test_client()
    path = create(client, 10)
    lock = app.extensions["tusserver"].locks.acquire(upload_id(path), wait=0)
    try:
        response = patch(client, path, 0, b"abc")
        assert response.status_code == 423
    finally:
        lock.release()
    assert offset_of(client, path) == 0
    assert patch(client, path, 0, b"abc").status_code == 204
