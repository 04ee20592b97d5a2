"""The IETF draft "Resumable Uploads for HTTP" (interop versions 6 and 8) over both stores."""

from __future__ import annotations

import json
from typing import Any

import http_sf
import pytest

from tests.support.ietf import (
    PARTIAL,
    digest_field,
    draft_append,
    draft_create,
    draft_head,
    draft_upload,
    interop,
)
from tests.support.tus import TUS, Trickle, create, head, patch, path_of, send_raw

VERSIONS = [6, 8]
DATA = bytes(range(256)) * 400  # 102,400 bytes: more than one S3 part in the HTTP suite


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/problem+json"
    return json.loads(response.get_data(as_text=True))


def limits(response: Any) -> dict[str, int]:
    return {
        k: v
        for k, (v, _) in http_sf.parse(
            response.headers["Upload-Limit"].encode(), tltype="dictionary"
        ).items()
    }


# -- protocol detection ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["5", "3", "7", "9", "abc", "?1", "6, 8", "-6", ""])
def test_unsupported_interop_version_is_400_naming_6_and_8(client: Any, value: str) -> None:
    response = client.post("/files/", headers={"Upload-Draft-Interop-Version": value})
    assert response.status_code == 400
    detail = problem(response)["detail"]
    assert "6 and 8" in detail
    assert "Tus-Resumable" not in response.headers
    assert client.get("/api/uploads").get_json()["total"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_draft_responses_do_not_speak_tus(client: Any, version: int) -> None:
    response = draft_create(client, version)
    assert response.status_code == 201
    assert "Tus-Resumable" not in response.headers
    assert response.headers["Upload-Complete"] == "?0"
    assert response.headers["Upload-Offset"] == "0"


# -- creation --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_create_complete_in_one_request(client: Any, version: int) -> None:
    response = draft_create(client, version, DATA, complete=True)
    assert response.status_code == 201
    assert response.headers["Upload-Complete"] == "?1"
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"] == str(len(DATA))
    path = path_of(response.headers["Location"])
    assert client.get(path).data == DATA


@pytest.mark.parametrize("version", VERSIONS)
def test_create_incomplete_then_append_until_complete(client: Any, version: int) -> None:
    response = draft_create(client, version, DATA[:1000], **{"Upload-Length": str(len(DATA))})
    assert response.status_code == 201
    assert response.headers["Upload-Complete"] == "?0"
    assert response.headers["Upload-Offset"] == "1000"
    path = path_of(response.headers["Location"])
    middle = draft_append(client, version, path, 1000, DATA[1000:50_000], complete=False)
    assert middle.status_code == 204
    assert middle.headers["Upload-Complete"] == "?0"
    assert middle.headers["Upload-Offset"] == "50000"
    last = draft_append(client, version, path, 50_000, DATA[50_000:], complete=True)
    assert last.status_code == 204
    assert last.headers["Upload-Complete"] == "?1"
    assert client.get(path).data == DATA


@pytest.mark.parametrize("version", VERSIONS)
def test_length_becomes_known_when_the_client_completes(client: Any, version: int) -> None:
    path = draft_upload(client, version)
    state = draft_head(client, version, path)
    assert "Upload-Length" not in state.headers
    assert draft_append(client, version, path, 0, DATA[:700], complete=False).status_code == 204
    assert "Upload-Length" not in draft_head(client, version, path).headers
    done = draft_append(client, version, path, 700, b"", complete=True)
    assert done.headers["Upload-Complete"] == "?1"
    state = draft_head(client, version, path)
    assert state.headers["Upload-Length"] == state.headers["Upload-Offset"] == "700"
    assert client.get(path).data == DATA[:700]


@pytest.mark.parametrize("version", VERSIONS)
def test_chunked_final_append_declares_the_length_at_commit(client: Any, version: int) -> None:
    path = draft_upload(client, version)
    headers = {
        **interop(version),
        "Content-Type": PARTIAL,
        "Upload-Offset": "0",
        "Upload-Complete": "?1",
        "Transfer-Encoding": "chunked",
    }
    response = send_raw(client, "PATCH", path, Trickle(DATA), headers)
    assert response.status_code == 204
    assert response.headers["Upload-Complete"] == "?1"
    assert response.headers["Upload-Length"] == str(len(DATA))
    assert client.get(path).data == DATA


@pytest.mark.parametrize("version", VERSIONS)
def test_a_cut_off_completing_append_leaves_the_upload_incomplete(
    client: Any, version: int
) -> None:
    path = draft_upload(client, version)
    headers = {
        **interop(version),
        "Content-Type": PARTIAL,
        "Upload-Offset": "0",
        "Upload-Complete": "?1",
        "Transfer-Encoding": "chunked",
    }
    send_raw(client, "PATCH", path, Trickle(DATA, fail_after=8192), headers)
    state = draft_head(client, version, path)
    assert state.headers["Upload-Complete"] == "?0"
    assert state.headers["Upload-Offset"] == "8192"
    assert "Upload-Length" not in state.headers
    done = draft_append(client, version, path, 8192, DATA[8192:], complete=True)
    assert done.headers["Upload-Complete"] == "?1"
    assert client.get(path).data == DATA


@pytest.mark.parametrize("version", VERSIONS)
def test_creation_takes_name_and_type_from_representation_metadata(
    client: Any, version: int
) -> None:
    response = draft_create(
        client,
        version,
        b"hello",
        complete=True,
        **{
            "Content-Type": "text/plain",
            "Content-Disposition": 'inline; filename="note.txt"',
        },
    )
    upload = client.get("/api/uploads").get_json()["uploads"][0]
    assert (upload["filename"], upload["filetype"]) == ("note.txt", "text/plain")
    download = client.get(path_of(response.headers["Location"]))
    assert download.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("version", VERSIONS)
def test_inconsistent_length_at_creation_creates_nothing(client: Any, version: int) -> None:
    response = draft_create(client, version, b"12345", complete=True, **{"Upload-Length": "9"})
    assert response.status_code == 400
    body = problem(response)
    if version == 8:
        assert body["type"].endswith("#inconsistent-upload-length")
    else:  # draft -05 has no such problem type
        assert body["type"] == "about:blank"
    assert client.get("/api/uploads").get_json()["total"] == 0


# -- offset retrieval ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_head_reports_offset_completeness_length_and_limits(client: Any, version: int) -> None:
    path = path_of(
        draft_create(client, version, DATA[:10], **{"Upload-Length": "100"}).headers["Location"]
    )
    response = draft_head(client, version, path)
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "10"
    assert response.headers["Upload-Complete"] == "?0"
    assert response.headers["Upload-Length"] == "100"
    assert response.headers["Cache-Control"] == "no-store"
    age_key = "max-age" if version == 8 else "expires"
    announced = limits(response)
    assert 0 < announced[age_key] <= 86400
    assert announced["min-size"] == 0
    assert "Tus-Resumable" not in response.headers


def test_limits_announce_the_maximum_size_and_413_carries_them(make_app: Any) -> None:
    client = make_app(max_size=1000).test_client()
    options = client.options("/files/", headers=interop(8))
    assert limits(options)["max-size"] == 1000
    assert limits(options)["max-append-size"] == 1000
    response = draft_create(client, 8, b"x" * 1001, complete=True)
    assert response.status_code == 413
    assert limits(response)["max-size"] == 1000


# -- append errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_offset_mismatch_is_409_with_the_problem_document(client: Any, version: int) -> None:
    path = path_of(draft_create(client, version, DATA[:100]).headers["Location"])
    response = draft_append(client, version, path, 50, DATA[50:200], complete=False)
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "100"
    body = problem(response)
    assert (
        body["type"] == "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    )
    assert (body["expected-offset"], body["provided-offset"]) == (100, 50)
    assert draft_head(client, version, path).headers["Upload-Offset"] == "100"


@pytest.mark.parametrize("version", VERSIONS)
def test_append_to_a_completed_upload_is_refused(client: Any, version: int) -> None:
    path = path_of(draft_create(client, version, b"done", complete=True).headers["Location"])
    empty = draft_append(client, version, path, 4, b"", complete=True)
    assert empty.status_code == 400
    assert problem(empty)["type"].endswith("#completed-upload")
    more = draft_append(client, version, path, 4, b"more", complete=True)
    assert more.status_code == 400
    expected = "#inconsistent-upload-length" if version == 8 else "about:blank"
    assert problem(more)["type"].endswith(expected)
    assert client.get(path).data == b"done"


@pytest.mark.parametrize("version", VERSIONS)
def test_completing_short_of_the_declared_length_is_refused(client: Any, version: int) -> None:
    path = draft_upload(client, version, **{"Upload-Length": "10"})
    response = draft_append(client, version, path, 0, b"12345", complete=True)
    assert response.status_code == 400
    assert draft_head(client, version, path).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "application/offset+octet-stream"}, 415),
        ({"Content-Type": "application/octet-stream"}, 415),
        ({"Upload-Offset": None}, 400),
        ({"Upload-Offset": "-1"}, 400),
        ({"Upload-Offset": "1.5"}, 400),
        ({"Upload-Offset": "abc"}, 400),
        ({"Upload-Complete": None}, 400),
        ({"Upload-Complete": "1"}, 400),
        ({"Upload-Complete": "true"}, 400),
        ({"Upload-Complete": "?2"}, 400),
        ({"Upload-Length": "x"}, 400),
        ({"Content-Digest": "sha-256=abc"}, 400),
        ({"Content-Digest": "sha-256=:AAAA:"}, 400),
    ],
)
def test_malformed_append_headers_change_nothing(
    client: Any, headers: dict[str, str | None], status: int
) -> None:
    path = draft_upload(client, 8)
    sent = {
        **interop(8),
        "Content-Type": PARTIAL,
        "Upload-Offset": "0",
        "Upload-Complete": "?0",
    }
    for name, value in headers.items():
        if value is None:
            sent.pop(name)
        else:
            sent[name] = value
    response = client.patch(path, data=b"abc", headers=sent)
    assert response.status_code == status
    assert problem(response)["status"] == status
    assert draft_head(client, 8, path).headers["Upload-Offset"] == "0"


# -- cancellation and discovery --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_cancellation(client: Any, version: int) -> None:
    path = path_of(draft_create(client, version, DATA[:100]).headers["Location"])
    response = client.delete(path, headers=interop(version))
    assert response.status_code == 204
    assert draft_head(client, version, path).status_code == 410
    assert client.get("/api/uploads").get_json()["total"] == 0


@pytest.mark.parametrize("headers", [interop(6), interop(8), {}])
def test_options_discovery(client: Any, headers: dict[str, str]) -> None:
    response = client.options("/files/", headers=headers)
    assert response.status_code == 204
    assert "application/partial-upload" in response.headers["Accept-Patch"]
    assert "Upload-Limit" in response.headers


# -- RFC 9530 digests ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512"])
def test_content_digest_is_verified_before_the_bytes_count(
    client: Any, version: int, algorithm: str
) -> None:
    path = draft_upload(client, version)
    good = digest_field(DATA[:500], algorithm)
    wrong = digest_field(b"other", algorithm)
    bad = draft_append(client, version, path, 0, DATA[:500], False, **{"Content-Digest": wrong})
    assert bad.status_code == 400
    assert draft_head(client, version, path).headers["Upload-Offset"] == "0"
    ok = draft_append(client, version, path, 0, DATA[:500], False, **{"Content-Digest": good})
    assert ok.status_code == 204
    assert ok.headers["Upload-Offset"] == "500"


@pytest.mark.parametrize("version", VERSIONS)
def test_repr_digest_checked_at_completion(client: Any, version: int) -> None:
    announced = digest_field(DATA, "sha-512")
    path = draft_upload(client, version, **{"Repr-Digest": announced})
    draft_append(client, version, path, 0, DATA[:1000], complete=False)
    done = draft_append(client, version, path, 1000, DATA[1000:], complete=True)
    assert done.status_code == 204
    assert done.headers["Upload-Complete"] == "?1"
    assert done.headers["Repr-Digest"] == announced
    download = client.get(path, headers={"Want-Repr-Digest": "sha-512=5"})
    assert download.data == DATA
    assert download.headers["Repr-Digest"] == announced


@pytest.mark.parametrize("version", VERSIONS)
def test_repr_digest_mismatch_leaves_the_upload_incomplete(client: Any, version: int) -> None:
    path = draft_upload(client, version, **{"Repr-Digest": digest_field(b"something else")})
    draft_append(client, version, path, 0, DATA[:1000], complete=False)
    response = draft_append(client, version, path, 1000, DATA[1000:], complete=True)
    assert response.status_code == 400
    assert "Repr-Digest" in problem(response)["detail"]
    state = draft_head(client, version, path)
    assert state.headers["Upload-Complete"] == "?0"
    assert state.headers["Upload-Offset"] == "1000"
    assert client.get(path).status_code == 409


def test_want_repr_digest_at_creation_is_computed_at_completion(client: Any) -> None:
    response = draft_create(client, 8, DATA, complete=True, **{"Want-Repr-Digest": "sha-256=3"})
    assert response.headers["Repr-Digest"] == digest_field(DATA)
    path = path_of(response.headers["Location"])
    download = client.get(path, headers={"Want-Repr-Digest": "sha-512=1, sha-256=9"})
    assert download.headers["Repr-Digest"] == digest_field(DATA)
    assert "Repr-Digest" not in client.get(path).headers  # only when asked


def test_tus_requests_use_content_digest_and_repr_digest_too(client: Any) -> None:
    path = create(client, len(DATA), headers={"Repr-Digest": digest_field(DATA)})
    wrong = patch(client, path, 0, DATA[:10], **{"Content-Digest": digest_field(b"x")})
    assert wrong.status_code == 460
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert (
        patch(client, path, 0, DATA[:10], **{"Content-Digest": digest_field(DATA[:10])}).status_code
        == 204
    )
    assert patch(client, path, 10, DATA[10:]).status_code == 204
    assert client.get(path, headers={"Want-Repr-Digest": "sha-256=1"}).headers[
        "Repr-Digest"
    ] == digest_field(DATA)


def test_tus_repr_digest_mismatch_keeps_the_upload_incomplete(client: Any) -> None:
    path = create(client, len(DATA), headers={"Repr-Digest": digest_field(b"nope")})
    response = patch(client, path, 0, DATA)
    assert response.status_code == 460
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert client.get(path).status_code == 409


# -- one upload, both protocols --------------------------------------------------------------


def test_created_with_tus_finished_with_interop_8(client: Any) -> None:
    path = create(client, len(DATA))
    assert patch(client, path, 0, DATA[:3000]).status_code == 204
    state = draft_head(client, 8, path)
    assert (state.headers["Upload-Offset"], state.headers["Upload-Complete"]) == ("3000", "?0")
    done = draft_append(client, 8, path, 3000, DATA[3000:], complete=True)
    assert done.headers["Upload-Complete"] == "?1"
    assert head(client, path).headers["Upload-Offset"] == str(len(DATA))
    assert client.get(path).data == DATA


def test_created_with_interop_6_read_back_with_tus_head(client: Any) -> None:
    response = draft_create(
        client,
        6,
        DATA[:2000],
        **{"Upload-Length": str(len(DATA)), "Upload-Metadata": "filename YS50eHQ="},
    )
    path = path_of(response.headers["Location"])
    state = head(client, path)
    assert state.headers["Tus-Resumable"] == "1.0.0"
    assert state.headers["Upload-Offset"] == "2000"
    assert state.headers["Upload-Length"] == str(len(DATA))
    assert state.headers["Upload-Metadata"] == "filename YS50eHQ="
    assert patch(client, path, 2000, DATA[2000:]).status_code == 204
    assert draft_head(client, 6, path).headers["Upload-Complete"] == "?1"


def test_tus_headers_unchanged_by_the_draft(client: Any) -> None:
    response = client.options("/files/", headers=TUS)
    assert "concatenation-unfinished" in response.headers["Tus-Extension"].split(",")
    assert response.headers["Tus-Resumable"] == "1.0.0"


def test_without_a_gunicorn_socket_there_is_no_interim_response(client: Any) -> None:
    """Flask's test client (any WSGI server but gunicorn) gets the final response only.

    The client then learns the upload's URL from the final response's Location, as a client
    whose 104 was dropped by an intermediary does.
    """
    response = draft_create(client, 8, DATA, complete=True)
    assert response.status_code == 201
    assert response.headers["Location"].endswith(path_of(response.headers["Location"]))


# -- access control --------------------------------------------------------------------------


def _accounts_app(make_app: Any) -> tuple[Any, dict[str, str]]:
    app = make_app(auth="required")
    accounts = app.extensions["tusserver"].accounts
    tokens = {}
    for name in ("alice", "bob"):
        accounts.create_user(name, None)
        tokens[name] = accounts.issue_token(name)[0]
    return app, tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("protocol", ["tus", "draft-6", "draft-8"])
def test_a_bearer_token_works_on_draft_requests_as_on_tus_requests(
    make_app: Any, protocol: str
) -> None:
    """Same answers whichever protocol: the owner's token works, another user's sees a 404."""
    app, tokens = _accounts_app(make_app)
    client = app.test_client()
    alice, bob = _bearer(tokens["alice"]), _bearer(tokens["bob"])
    if protocol == "tus":
        created = client.post("/files/", headers={**TUS, **alice, "Upload-Length": "5"})
        path = path_of(created.headers["Location"])
        sent = patch(client, path, 0, b"hello", **alice)
        foreign = client.head(path, headers={**TUS, **bob})
        anonymous = client.head(path, headers=TUS)
        deleted_by_bob = client.delete(path, headers={**TUS, **bob})
    else:
        version = int(protocol[-1])
        created = draft_create(client, version, **alice)
        path = path_of(created.headers["Location"])
        sent = draft_append(client, version, path, 0, b"hello", True, **alice)
        foreign = draft_head(client, version, path, **bob)
        anonymous = draft_head(client, version, path)
        deleted_by_bob = client.delete(path, headers={**interop(version), **bob})
        assert "Tus-Resumable" not in anonymous.headers
    assert created.status_code == 201
    assert sent.status_code == 204
    assert foreign.status_code == 404, "another user's upload is a 404, as if missing"
    assert anonymous.status_code == 401
    assert deleted_by_bob.status_code == 404
    assert client.get(path, headers=alice).data == b"hello"
    assert client.get(path, headers=bob).status_code == 404
    listed = client.get("/api/uploads", headers=alice).get_json()
    assert [u["id"] for u in listed["uploads"]] == [path.rsplit("/", 1)[-1]]


def test_draft_request_without_credentials_gets_a_problem_document(make_app: Any) -> None:
    app, _ = _accounts_app(make_app)
    response = draft_create(app.test_client(), 8)
    assert response.status_code == 401
    assert problem(response)["status"] == 401
    assert "Tus-Resumable" not in response.headers
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_length_known_only_at_the_end_counts_against_the_quota(make_app: Any) -> None:
    """A chunked `Upload-Complete: ?1` declares the length when its body ends: the quota is
    checked then, before the commit, and a refusal leaves the upload as it was."""
    app = make_app(auth="required")
    accounts = app.extensions["tusserver"].accounts
    accounts.create_user("carol", None, quota=1000)
    token = accounts.issue_token("carol")[0]
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    path = draft_upload(client, 8, **auth)
    headers = {
        **interop(8),
        **auth,
        "Content-Type": PARTIAL,
        "Upload-Offset": "0",
        "Upload-Complete": "?1",
        "Transfer-Encoding": "chunked",
    }
    refused = send_raw(client, "PATCH", path, Trickle(b"x" * 1500), headers)
    assert refused.status_code == 413
    state = draft_head(client, 8, path, **auth)
    assert (state.headers["Upload-Offset"], state.headers["Upload-Complete"]) == ("0", "?0")
    accepted = send_raw(client, "PATCH", path, Trickle(b"y" * 900), headers)
    assert accepted.headers["Upload-Complete"] == "?1"
    assert accounts.usage("carol") == 900
