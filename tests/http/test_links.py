"""Signed download links: made by the owner, used by anyone holding them, until revoked."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.tus import create, patch, upload_id

DATA = hashlib.sha512(b"links").digest() * 2500  # 160,000 bytes: several S3 parts
ABSENT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def path(client: Any) -> str:
    path = create(client, len(DATA), filename="report.pdf", filetype="application/pdf")
    assert patch(client, path, 0, DATA).status_code == 204
    return path


def make_link(client: Any, path: str, expires_in: int = 3600) -> str:
    response = client.post(f"/api/uploads/{upload_id(path)}/links", json={"expires_in": expires_in})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["url"]


def local(url: str) -> str:
    """The path and query of an absolute URL, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def test_a_link_downloads_the_file_with_no_credential(app: Any, client: Any, path: str) -> None:
    response = client.post(f"/api/uploads/{upload_id(path)}/links", json={"expires_in": 600})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"url", "expires"}
    assert body["url"].startswith("http://localhost/links/")
    assert body["expires"].endswith("Z")

    stranger = app.test_client()  # a fresh client: no cookie, no Authorization
    download = stranger.get(local(body["url"]))
    assert download.status_code == 200
    assert download.data == DATA
    # Same safe headers as /files/<id>: a type outside the inline list goes out as octet-stream.
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download.headers["Content-Security-Policy"]
    assert download.headers["Referrer-Policy"] == "no-referrer"
    assert download.headers["Cache-Control"] == "private, no-cache"  # revalidated, so revocable


def test_a_link_serves_ranges_etags_and_304_like_files(client: Any, path: str) -> None:
    link = local(make_link(client, path))
    whole = client.get(path)
    head = client.head(link)
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["ETag"] == whole.headers["ETag"]

    part = client.get(link, headers={"Range": "bytes=100-65635"})
    assert part.status_code == 206
    assert part.data == DATA[100:65636]
    assert part.headers["Content-Range"] == f"bytes 100-65635/{len(DATA)}"

    suffix = client.get(link, headers={"Range": "bytes=-10"})
    assert suffix.data == DATA[-10:]

    unchanged = client.get(link, headers={"If-None-Match": whole.headers["ETag"]})
    assert unchanged.status_code == 304
    assert unchanged.data == b""

    beyond = client.get(link, headers={"Range": f"bytes={len(DATA)}-"})
    assert beyond.status_code == 416


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda url: with_query(url, signature="A" * 43), id="signature"),
        pytest.param(
            lambda url: with_query(
                url, signature=_flip(parse_qs(urlsplit(url).query)["signature"][0])
            ),
            id="one-character",
        ),
        pytest.param(
            lambda url: with_query(
                url, expires=str(int(parse_qs(urlsplit(url).query)["expires"][0]) + 1)
            ),
            id="expiry",
        ),
        pytest.param(lambda url: with_query(url, signature=""), id="no-signature"),
        pytest.param(lambda url: urlsplit(url).path, id="no-query"),
        pytest.param(lambda url: with_query(url, expires="1e10"), id="bad-expiry"),
    ],
)
def test_a_tampered_link_is_403_and_nothing_more(client: Any, path: str, tamper: Any) -> None:
    response = client.get(tamper(make_link(client, path)))
    assert response.status_code == 403
    assert DATA[:64] not in response.data
    assert "ETag" not in response.headers
    assert "Content-Disposition" not in response.headers
    assert client.head(tamper(make_link(client, path))).status_code == 403


def test_a_link_for_another_upload_id_is_403(client: Any, path: str) -> None:
    other = create(client, 3)
    patch(client, other, 0, b"abc")
    make_link(client, other)  # the other upload has a link secret of its own
    url = make_link(client, path)
    swapped = local(url).replace(upload_id(path), upload_id(other))
    assert client.get(swapped).status_code == 403
    assert client.get(local(url).replace(upload_id(path), ABSENT)).status_code == 403
    assert client.get(local(url).replace(upload_id(path), "../files")).status_code in (403, 404)


def test_an_expired_link_is_403(app: Any, client: Any, path: str) -> None:
    url = local(make_link(client, path, expires_in=1))
    query = parse_qs(urlsplit(url).query)
    expires = int(query["expires"][0])
    assert client.get(url).status_code == 200
    # Sign the same link as it was, but with an expiry already past: only the time differs.
    from tusserver.auth.signed import sign_link

    components = app.extensions["tusserver"]
    secret = components.links.link_secret(upload_id(path))
    past = expires - 3600
    stale = with_query(
        url,
        expires=str(past),
        signature=sign_link(components.secret_key, upload_id(path), past, secret),
    )
    assert client.get(stale).status_code == 403


def test_revoking_kills_every_link_and_new_links_work(client: Any, path: str) -> None:
    first, second = local(make_link(client, path)), local(make_link(client, path, 60))
    assert client.get(first).status_code == 200
    assert client.delete(f"/api/uploads/{upload_id(path)}/links").status_code == 204
    assert client.get(first).status_code == 403
    assert client.head(second).status_code == 403
    fresh = local(make_link(client, path))
    assert client.get(fresh).status_code == 200
    assert client.get(first).status_code == 403


def test_links_of_a_deleted_upload_no_longer_download(client: Any, path: str) -> None:
    link = local(make_link(client, path))
    assert client.delete(f"/api/uploads/{upload_id(path)}").status_code == 204
    assert client.get(link).status_code in (403, 404, 410)
    assert DATA[:64] not in client.get(link).data


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": "60"},
        {"expires_in": True},
        {"expires_in": 10**12},
        {"expires_in": 1.5},
        [],
        "x",
        None,
    ],
)
def test_bad_link_requests_are_400(client: Any, path: str, body: Any) -> None:
    response = client.post(f"/api/uploads/{upload_id(path)}/links", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad-request"


def test_links_to_missing_or_incomplete_uploads(client: Any) -> None:
    assert client.post(f"/api/uploads/{ABSENT}/links", json={"expires_in": 60}).status_code == 404
    assert client.delete(f"/api/uploads/{ABSENT}/links").status_code == 404
    assert client.post("/api/uploads/not-an-id/links", json={"expires_in": 60}).status_code == 404
    unfinished = create(client, 10)
    response = client.post(f"/api/uploads/{upload_id(unfinished)}/links", json={"expires_in": 60})
    assert response.status_code == 409


def test_download_origin_is_used_for_link_and_download_urls(make_app: Any) -> None:
    app = make_app(download_origin="https://files.example.net")
    client = app.test_client()
    path = create(client, 3)
    patch(client, path, 0, b"abc")
    url = make_link(client, path)
    assert url.startswith(f"https://files.example.net/links/{upload_id(path)}?expires=")
    assert client.get(local(url)).data == b"abc"
    info = client.get(f"/api/uploads/{upload_id(path)}").get_json()
    assert info["download_url"] == f"https://files.example.net/files/{upload_id(path)}"
    assert info["url"] == f"http://localhost/files/{upload_id(path)}"  # uploads stay with us


def test_the_request_log_never_holds_the_signature(
    client: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_link(client, path)
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    with caplog.at_level("DEBUG"):
        # The request log line is written once the body has gone out: read it, then close.
        for target, status in ((local(url), 200), (with_query(url, signature="x" * 43), 403)):
            response = client.get(target)
            assert response.status_code == status
            assert response.data is not None
            response.close()
    assert any(record.name == "tusserver.request" for record in caplog.records)
    assert signature not in caplog.text


def _flip(signature: str) -> str:
    last = "A" if signature[-1] != "A" else "B"
    return signature[:-1] + last
