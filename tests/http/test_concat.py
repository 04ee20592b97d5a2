"""Concatenation: partial uploads, final uploads made of them, and what happens to both."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.tus import TUS, create, head, patch, path_of, stored_objects, upload_id

A = bytes(range(256)) * 273 + b"A" * 112  # 70,000 bytes: more than one S3 part
B = b"B" * 50_000
C = b"C" * 10


def partial(client: Any, data: bytes, complete: bool = True) -> str:
    path = create(client, len(data), headers={"Upload-Concat": "partial"})
    if complete and data:
        assert patch(client, path, 0, data).status_code == 204
    return path


def make_final(client: Any, *paths: str, **headers: str) -> Any:
    return client.post(
        "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths), **headers}
    )


def final(client: Any, *paths: str) -> str:
    response = make_final(client, *paths)
    assert response.status_code == 201, response.get_data(as_text=True)
    return path_of(response.headers["Location"])


def test_head_of_a_partial_echoes_upload_concat(client: Any) -> None:
    path = partial(client, C, complete=False)
    response = head(client, path)
    assert response.headers["Upload-Concat"] == "partial"
    assert response.headers["Upload-Length"] == "10"


def test_final_of_complete_partials(client: Any) -> None:
    a, b = partial(client, A), partial(client, B)
    response = make_final(client, a, b)
    assert response.status_code == 201
    path = path_of(response.headers["Location"])
    state = head(client, path)
    assert state.status_code == 200
    assert state.headers["Upload-Length"] == str(len(A) + len(B))
    assert state.headers["Upload-Offset"] == str(len(A) + len(B))
    assert "Upload-Expires" not in state.headers
    concat = state.headers["Upload-Concat"]
    assert concat.startswith("final;")
    urls = concat[len("final;") :].split(" ")
    assert [upload_id(u) for u in urls] == [upload_id(a), upload_id(b)]


def test_final_accepts_absolute_urls(client: Any) -> None:
    a, b = partial(client, C), partial(client, C)
    path = final(client, f"http://localhost{a}", f"http://localhost{b}")
    assert client.get(path).data == C + C


def test_final_download_streams_partials_in_order(client: Any) -> None:
    a, b, c = partial(client, A), partial(client, B), partial(client, C)
    path = final(client, b, a, c)
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(A) + len(B) + len(C))
    assert response.data == B + A + C


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (len(A) - 5, len(A) + 4),  # across the boundary between the partials
        (65_530, len(A) + 100),  # across an S3 part boundary and the partial boundary
        (0, len(A) - 1),  # exactly the first partial
        (len(A), len(A) + len(B) - 1),  # exactly the second
        (len(A) + len(B) - 1, len(A) + len(B) - 1),  # the last byte
    ],
)
def test_range_of_a_final(client: Any, start: int, end: int) -> None:
    path = final(client, partial(client, A), partial(client, B))
    response = client.get(path, headers={"Range": f"bytes={start}-{end}"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(A) + len(B)}"
    assert response.data == (A + B)[start : end + 1]


def test_patch_to_a_final_is_403(client: Any) -> None:
    path = final(client, partial(client, C))
    response = patch(client, path, len(C), b"more")
    assert response.status_code == 403
    assert client.get(path).data == C


def test_final_with_upload_length_is_400(client: Any) -> None:
    a = partial(client, C)
    response = make_final(client, a, **{"Upload-Length": "10"})
    assert response.status_code == 400
    assert client.get("/api/uploads").get_json()["total"] == 0


def test_final_with_defer_length_is_400(client: Any) -> None:
    response = make_final(client, partial(client, C), **{"Upload-Defer-Length": "1"})
    assert response.status_code == 400


def test_final_of_an_unknown_partial_is_400(client: Any) -> None:
    response = make_final(client, partial(client, C), "/files/0123456789abcdef0123456789abcdef")
    assert response.status_code == 400
    assert client.get("/api/uploads").get_json()["total"] == 0


def test_final_made_before_its_partials_finish_completes_with_them(client: Any) -> None:
    """concatenation-unfinished: the final upload exists at once and completes with its parts."""
    a, b = partial(client, A, complete=False), partial(client, B, complete=False)
    patch(client, a, 0, A[:100])
    path = final(client, a, b)
    state = head(client, path)
    assert state.status_code == 200
    assert "Upload-Offset" not in state.headers, "no offset before the concatenation finished"
    assert state.headers["Upload-Length"] == str(len(A) + len(B))
    assert state.headers["Upload-Concat"].startswith("final;")
    unfinished = client.get(path)
    assert unfinished.status_code == 409

    assert patch(client, a, 100, A[100:]).status_code == 204
    assert "Upload-Offset" not in head(client, path).headers
    assert patch(client, b, 0, B).status_code == 204
    done = head(client, path)
    assert done.headers["Upload-Offset"] == done.headers["Upload-Length"] == str(len(A) + len(B))
    assert client.get(path).data == A + B


def test_final_of_a_deferred_length_partial_reports_no_length_until_known(client: Any) -> None:
    a = path_of(
        client.post(
            "/files/",
            headers={**TUS, "Upload-Concat": "partial", "Upload-Defer-Length": "1"},
        ).headers["Location"]
    )
    path = final(client, a)
    state = head(client, path)
    assert "Upload-Length" not in state.headers and "Upload-Offset" not in state.headers
    response = patch(client, a, 0, C, **{"Upload-Length": str(len(C))})
    assert response.status_code == 204
    assert head(client, path).headers["Upload-Offset"] == str(len(C))
    assert client.get(path).data == C


def test_final_of_a_non_partial_upload_is_400(client: Any) -> None:
    plain = create(client, 1)
    patch(client, plain, 0, b"x")
    assert make_final(client, plain).status_code == 400


def test_final_of_a_final_is_400(client: Any) -> None:
    first = final(client, partial(client, C))
    assert make_final(client, first).status_code == 400


@pytest.mark.parametrize(
    "header",
    [
        "final;",
        "final",
        "final; ",
        "final;/elsewhere/0123456789abcdef0123456789abcdef",
        "final;/files/../etc/passwd",
        "final;ftp://localhost/files/0123456789abcdef0123456789abcdef",
        "partial;/files/0123456789abcdef0123456789abcdef",
        "whole",
    ],
)
def test_malformed_upload_concat_is_400(client: Any, header: str) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Concat": header})
    assert response.status_code == 400
    assert client.get("/api/uploads").get_json()["total"] == 0


def test_partials_are_hidden_from_the_listing(client: Any) -> None:
    a, b = partial(client, C), partial(client, C)
    path = final(client, a, b)
    listing = client.get("/api/uploads").get_json()
    assert [u["id"] for u in listing["uploads"]] == [upload_id(path)]
    assert listing["total"] == 1


def test_terminating_a_partial_in_use_is_403(client: Any) -> None:
    a = partial(client, C)
    path = final(client, a)
    response = client.delete(a, headers=TUS)
    assert response.status_code == 403
    assert head(client, a).status_code == 200
    assert client.get(path).data == C


def test_terminating_an_unused_partial(app: Any, client: Any) -> None:
    a = partial(client, A)
    assert client.delete(a, headers=TUS).status_code == 204
    assert head(client, a).status_code == 410
    assert stored_objects(app, upload_id(a)) == {}


def test_terminating_a_final_removes_only_partials_no_other_final_uses(
    app: Any, client: Any
) -> None:
    a, b, c = partial(client, A), partial(client, B), partial(client, C)
    first = final(client, a, b)
    second = final(client, b, c)

    assert client.delete(first, headers=TUS).status_code == 204
    assert head(client, first).status_code == 410
    assert head(client, a).status_code == 410
    assert stored_objects(app, upload_id(a)) == {}
    assert head(client, b).status_code == 200
    assert client.get(second).data == B + C

    assert client.delete(second, headers=TUS).status_code == 204
    for gone in (b, c, second):
        assert head(client, gone).status_code == 410
        assert stored_objects(app, upload_id(gone)) == {}


def test_final_survives_the_expiry_of_its_partials(make_app: Any) -> None:
    now = [1_750_000_000.0]
    app = make_app(clock=lambda: now[0], expire_after=60)
    client = app.test_client()
    a = partial(client, C)
    unused = partial(client, C)
    path = final(client, a)
    now[0] += 3600
    removed = app.extensions["tusserver"].service.cleanup()
    assert removed == [upload_id(unused)]
    assert client.get(path).data == C
    assert head(client, a).status_code == 200


def test_partials_in_use_do_not_hold_up_the_cleanup(make_app: Any) -> None:
    """More expired-but-kept partials than the reaper looks at in one batch."""
    now = [1_750_000_000.0]
    app = make_app(clock=lambda: now[0], expire_after=60)
    client = app.test_client()
    parts = [partial(client, b"p") for _ in range(105)]
    path = final(client, *parts)
    now[0] += 10
    late = create(client, 10)  # expires after every partial
    now[0] += 3600
    assert app.extensions["tusserver"].service.cleanup() == [upload_id(late)]
    assert head(client, late).status_code == 410
    assert client.get(path).status_code == 200
