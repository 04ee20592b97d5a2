"""Honest keep-alive under gunicorn: a refused request's unread body never breaks the next one.

Each refusal is sent on a raw keep-alive connection with a body of 1 KB, 300 KB or 5 MB, then
a second, non-idempotent request (a POST that creates an upload) goes over the same connection.
Either that second request is answered, or the refusal said `Connection: close` and the server
really closed the connection. Bodies up to a few MiB are discarded by the server, so for them
the connection must stay usable. Refusals: 400, 401 (a server that requires a credential), 403,
404, 405, 409, 413, 415 and 460, on tus PATCH and POST, the JSON API and unknown routes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.live import LiveServer, live_server
from tests.support.rawhttp import RawConnection

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
SIZES = {"1KB": 1000, "300KB": 300_000, "5MB": 5_000_000}
UNKNOWN = "/files/" + "0" * 32


@dataclass(frozen=True)
class Refusal:
    name: str
    method: str
    path: str  # "{upload}" / "{final}" are replaced by a real upload's path
    headers: dict[str, str]
    status: int | tuple[int, ...]


REFUSALS = [
    Refusal("patch-wrong-offset", "PATCH", "{upload}", {**OCTET, "Upload-Offset": "7"}, 409),
    Refusal("patch-bad-offset", "PATCH", "{upload}", {**OCTET, "Upload-Offset": "x"}, 400),
    Refusal("patch-content-type", "PATCH", "{upload}", {**TUS, "Upload-Offset": "0"}, 415),
    Refusal("patch-unknown", "PATCH", UNKNOWN, {**OCTET, "Upload-Offset": "0"}, 404),
    Refusal("patch-final", "PATCH", "{final}", {**OCTET, "Upload-Offset": "0"}, 403),
    Refusal("patch-too-long", "PATCH", "{small}", {**OCTET, "Upload-Offset": "0"}, 413),
    Refusal(
        "patch-checksum",
        "PATCH",
        "{upload}",
        {**OCTET, "Upload-Offset": "0", "Upload-Checksum": "sha1 " + "A" * 27 + "="},
        460,
    ),
    Refusal("post-too-long", "POST", "/files/", {**OCTET, "Upload-Length": "10"}, 413),
    Refusal("post-content-type", "POST", "/files/", {**TUS, "Upload-Length": "9999999"}, 415),
    Refusal("post-bad-length", "POST", "/files/", {**OCTET, "Upload-Length": "-1"}, 400),
    Refusal(
        "post-final-with-body",
        "POST",
        "/files/",
        {**OCTET, "Upload-Concat": "final;{upload}"},
        403,
    ),
    # The JSON API refuses a body over 64 KiB (413) before it looks at the upload (404), and a
    # body that is no JSON object (400) before the route's own checks.
    Refusal("api-unknown-upload", "PATCH", "/api/uploads/" + "0" * 32, {}, (400, 404, 413)),
    Refusal("api-unknown-route", "POST", "/api/nothing-here", {}, 404),
    Refusal("unknown-route", "PUT", "/somewhere/else", {}, (404, 405)),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("keepalive"), redis_url) as running:
        yield running


def _create(server: LiveServer, length: int, **headers: str) -> str:
    response = requests.post(
        f"{server.url}/files/", headers={**TUS, "Upload-Length": str(length), **headers}, timeout=10
    )
    assert response.status_code == 201, response.text
    return urlsplit(response.headers["Location"]).path


@pytest.fixture(scope="module")
def paths(server: LiveServer) -> dict[str, str]:
    upload = _create(server, 10_000_000)
    small = _create(server, 100)
    partial = _create(server, 0, **{"Upload-Concat": "partial"})
    final = requests.post(
        f"{server.url}/files/",
        headers={**TUS, "Upload-Concat": f"final;{partial}"},
        timeout=10,
    )
    assert final.status_code == 201, final.text
    return {"upload": upload, "small": small, "final": urlsplit(final.headers["Location"]).path}


def _fill(template: str, paths: dict[str, str]) -> str:
    return template.format(**paths)


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.name for r in REFUSALS])
def test_a_refusal_leaves_the_connection_usable_or_says_close(
    server: LiveServer, paths: dict[str, str], refusal: Refusal, size: str
) -> None:
    api = refusal.path.startswith("/api")
    body = b"{" + b"x" * (SIZES[size] - 1) if api else b"x" * SIZES[size]
    headers = {name: _fill(value, paths) for name, value in refusal.headers.items()}
    if api:
        headers["Content-Type"] = "application/json"
    with RawConnection(server.url) as conn:
        first = conn.request(refusal.method, _fill(refusal.path, paths), headers, body)
        expected = refusal.status if isinstance(refusal.status, tuple) else (refusal.status,)
        assert first.status in expected, first.body
        if first.closes:
            assert conn.closed_by_server(), "said Connection: close but kept the connection"
        else:
            second = conn.request(
                "POST", "/files/", {**TUS, "Upload-Length": "1", "Content-Length": "0"}
            )
            assert second.status == 201, second.body
        if SIZES[size] <= 300_000:
            assert not first.closes, "a small unread body should be discarded, not end the link"


def test_a_large_unread_body_closes_the_connection_honestly(
    server: LiveServer, paths: dict[str, str]
) -> None:
    """5 MB left unread: not worth reading, so the answer says close (and gunicorn closes)."""
    with RawConnection(server.url) as conn:
        first = conn.request(
            "PATCH", paths["upload"], {**OCTET, "Upload-Offset": "3"}, b"y" * 5_000_000
        )
        assert first.status == 409
        assert first.closes
        assert conn.closed_by_server()


def test_a_chunked_refused_body_is_discarded(server: LiveServer, paths: dict[str, str]) -> None:
    chunk = b"z" * 100_000
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    with RawConnection(server.url) as conn:
        first = conn.request(
            "PATCH",
            paths["upload"],
            {**OCTET, "Upload-Offset": "5", "Transfer-Encoding": "chunked"},
            encoded,
        )
        assert first.status == 409
        assert not first.closes
        metadata = "filename " + base64.b64encode(b"next.txt").decode()
        second = conn.request(
            "POST",
            "/files/",
            {**TUS, "Upload-Length": "1", "Content-Length": "0", "Upload-Metadata": metadata},
        )
        assert second.status == 201


def test_uploads_go_on_after_refusals_on_one_connection(server: LiveServer, tmp_path: Path) -> None:
    """A client that hits a 409 resyncs with HEAD and PATCHes again, all on one connection."""
    path = _create(server, 600_000)
    with RawConnection(server.url) as conn:
        first = conn.request("PATCH", path, {**OCTET, "Upload-Offset": "0"}, b"a" * 300_000)
        assert first.status == 204
        refused = conn.request("PATCH", path, {**OCTET, "Upload-Offset": "0"}, b"b" * 300_000)
        assert refused.status == 409 and not refused.closes
        offset = conn.request("HEAD", path, TUS).headers["upload-offset"]
        done = conn.request("PATCH", path, {**OCTET, "Upload-Offset": offset}, b"c" * 300_000)
        assert done.status == 204
        assert done.headers["upload-offset"] == "600000"


def test_head_override_on_a_complete_upload_keeps_the_connection_in_step(
    server: LiveServer,
) -> None:
    """POST + X-HTTP-Method-Override: HEAD answers Content-Length: 0, so the next response on
    the connection is read as a response, not as the rest of a body."""
    path = _create(server, 5)
    with RawConnection(server.url) as conn:
        done = conn.request("PATCH", path, {**OCTET, "Upload-Offset": "0"}, b"hello")
        assert done.status == 204
        first = conn.request("POST", path, {"X-HTTP-Method-Override": "HEAD"}, b"")
        assert first.status == 200
        assert first.headers["content-length"] == "0"
        second = conn.request("GET", path)
        assert second.status == 200
        assert second.body == b"hello"


def test_a_chunked_upload_read_in_full_keeps_the_connection(server: LiveServer) -> None:
    path = _create(server, 200_000)
    chunk = b"q" * 100_000
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    with RawConnection(server.url) as conn:
        done = conn.request(
            "PATCH", path, {**OCTET, "Upload-Offset": "0", "Transfer-Encoding": "chunked"}, encoded
        )
        assert done.status == 204
        assert done.headers["upload-offset"] == "200000"
        assert not done.closes
        download = conn.request("GET", path)
        assert download.status == 200
        assert download.body == chunk * 2


def test_a_patch_ended_early_for_a_newer_request_says_close(server: LiveServer) -> None:
    """The old request's body is cut (its socket's read side shut): it must not invite a next
    request on that connection."""
    path = _create(server, 1_000_000)
    with RawConnection(server.url) as conn:
        conn.send("PATCH", path, {**OCTET, "Upload-Offset": "0", "Content-Length": "1000000"})
        conn.sock.sendall(b"o" * 100_000)
        wait_until = time.monotonic() + 10
        while time.monotonic() < wait_until:  # the old request holds the lock and has the bytes
            if _offset_in_flight(server, path):
                break
            time.sleep(0.05)
        newer = requests.patch(
            f"{server.url}{path}",
            headers={**OCTET, "Upload-Offset": "0", "Content-Length": "0"},
            timeout=30,
        )
        assert newer.status_code == 409  # the old request committed its 100 000 bytes first
        assert newer.headers["Upload-Offset"] == "100000"
        old = conn.read_response()
        assert old.status == 204
        assert old.closes
        assert conn.closed_by_server()


def _offset_in_flight(server: LiveServer, path: str) -> bool:
    """True once the server has read some of the body (seen in the uploads-active gauge)."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return any(
        line.startswith("tusserver_uploads_active") and not line.endswith(" 0.0")
        for line in text.splitlines()
    )


UNAUTHORIZED = [
    Refusal("patch-no-credential", "PATCH", UNKNOWN, {**OCTET, "Upload-Offset": "0"}, 401),
    Refusal("post-no-credential", "POST", "/files/", {**OCTET, "Upload-Length": "9999999"}, 401),
    Refusal(
        "post-bad-token",
        "POST",
        "/files/",
        {**OCTET, "Upload-Length": "9999999", "Authorization": "Bearer not-a-token"},
        401,
    ),
    Refusal("api-no-credential", "PATCH", "/api/uploads/" + "0" * 32, {}, (401, 413)),
]


@pytest.fixture(scope="module")
def guarded_server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[LiveServer]:
    """A server that requires a credential: anonymous requests get 401."""
    env = {"TUSSERVER_AUTH": "required"}
    with live_server(tmp_path_factory.mktemp("guarded"), redis_url, env=env) as running:
        yield running


@pytest.mark.parametrize("size", list(SIZES), ids=list(SIZES))
@pytest.mark.parametrize("refusal", UNAUTHORIZED, ids=[r.name for r in UNAUTHORIZED])
def test_a_401_leaves_the_connection_usable_or_says_close(
    guarded_server: LiveServer, refusal: Refusal, size: str
) -> None:
    api = refusal.path.startswith("/api")
    body = b"{" + b"x" * (SIZES[size] - 1) if api else b"x" * SIZES[size]
    headers = dict(refusal.headers)
    if api:
        headers["Content-Type"] = "application/json"
    with RawConnection(guarded_server.url) as conn:
        first = conn.request(refusal.method, refusal.path, headers, body)
        expected = refusal.status if isinstance(refusal.status, tuple) else (refusal.status,)
        assert first.status in expected, first.body
        if first.closes:
            assert conn.closed_by_server(), "said Connection: close but kept the connection"
        else:
            second = conn.request("GET", "/api/health")
            assert second.status == 200, second.body
        if SIZES[size] <= 300_000:
            assert not first.closes, "a small unread body should be discarded, not end the link"
