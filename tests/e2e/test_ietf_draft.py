"""A raw-socket interop-8 client against gunicorn, following the examples of draft -11.

Raw sockets, because the point is what goes over the wire: the `104 Upload Resumption
Supported` interim response before the final one, on the same keep-alive connection. Every test
runs under both gunicorn worker classes the server offers (gevent, gthread).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.ietf import digest_field
from tests.support.live import LiveServer, free_port, live_server
from tests.support.rawhttp import RawConnection, RawResponse
from tests.support.tools import require_executable

DRAFT = {"Upload-Draft-Interop-Version": "8"}
MiB = 1024 * 1024


def path(url: str) -> str:
    return urlsplit(url).path


def create(conn: RawConnection, body: bytes, complete: bool, **headers: str) -> RawResponse:
    """POST and return the final response, checking the 104 that comes first."""
    sent = {**DRAFT, "Upload-Complete": "?1" if complete else "?0", **headers}
    conn.send("POST", "/files/", sent, body)
    interim = conn.read_response()
    assert interim.status == 104
    final = conn.read_response()
    assert final.headers["location"] == interim.headers["location"], "the same Location twice"
    assert "max-age=" in interim.headers["upload-limit"]
    return final


def append(
    conn: RawConnection, url: str, offset: int, body: bytes, complete: bool, **headers: str
) -> RawResponse:
    sent = {
        **DRAFT,
        "Content-Type": "application/partial-upload",
        "Upload-Offset": str(offset),
        "Upload-Complete": "?1" if complete else "?0",
        **headers,
    }
    return conn.request("PATCH", path(url), sent, body)


def offset_of(conn: RawConnection, url: str) -> RawResponse:
    return conn.request("HEAD", path(url), DRAFT)


def problem(response: RawResponse) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"
    return json.loads(response.body)


@pytest.fixture(params=["gevent", "gthread"])
def server(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    """Both worker classes: each hands the application the connection's socket, so both send
    the 104 (gevent's cooperative socket and gthread's plain one alike)."""
    env = {"TUSSERVER_WORKER_CLASS": request.param}
    with live_server(tmp_path / "data", redis_url, env=env) as running:
        yield running


@pytest.fixture
def conn(server: LiveServer) -> Iterator[RawConnection]:
    with RawConnection(server.url) as connection:
        yield connection


def test_creation_then_appends_ending_with_complete(
    server: LiveServer, conn: RawConnection
) -> None:
    data = os.urandom(3 * MiB + 17)
    created = create(conn, data[:MiB], complete=False, **{"Upload-Length": str(len(data))})
    assert created.status == 201
    assert created.headers["upload-complete"] == "?0"
    url = created.headers["location"]
    middle = append(conn, url, MiB, data[MiB : 2 * MiB], complete=False)
    assert (middle.status, middle.headers["upload-complete"]) == (204, "?0")
    state = offset_of(conn, url)
    assert state.headers["upload-offset"] == str(2 * MiB)
    assert state.headers["cache-control"] == "no-store"
    last = append(conn, url, 2 * MiB, data[2 * MiB :], complete=True)
    assert (last.status, last.headers["upload-complete"]) == (204, "?1")
    assert requests.get(url, timeout=30).content == data


def test_cut_off_creation_resumes_through_the_104_location(server: LiveServer) -> None:
    data = os.urandom(4 * MiB)
    sent_before_cut = MiB + 12345
    host = urlsplit(server.url)
    with socket.create_connection((host.hostname, host.port), timeout=20) as sock:
        head = (
            f"POST /files/ HTTP/1.1\r\nHost: {host.netloc}\r\n"
            f"Upload-Draft-Interop-Version: 8\r\nUpload-Complete: ?1\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode())
        # The optimistic client reads the interim response before the body is done...
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 104 Upload Resumption Supported\r\n")
        location = next(
            line.split(b":", 1)[1].strip().decode()
            for line in interim.split(b"\r\n")
            if line.lower().startswith(b"location:")
        )
        sock.sendall(data[:sent_before_cut])  # ...and then the connection drops.
    with RawConnection(server.url) as conn:
        offset = _settled_offset(conn, location)
        assert offset == sent_before_cut
        done = append(conn, location, offset, data[offset:], complete=True)
        assert done.headers["upload-complete"] == "?1"
    download = requests.get(location, timeout=30).content
    assert hashlib.sha256(download).digest() == hashlib.sha256(data).digest()


def _settled_offset(conn: RawConnection, url: str) -> int:
    """The offset once the server has noticed the drop and committed what arrived."""
    deadline = time.monotonic() + 20
    while True:
        state = offset_of(conn, url)
        assert state.headers["upload-complete"] == "?0"
        if int(state.headers["upload-offset"]) > 0 or time.monotonic() > deadline:
            return int(state.headers["upload-offset"])
        time.sleep(0.05)


def test_offset_mismatch_answers_its_problem_document(conn: RawConnection) -> None:
    url = create(conn, b"x" * 100, complete=False).headers["location"]
    response = append(conn, url, 25, b"y" * 10, complete=False)
    assert response.status == 409
    assert response.headers["upload-offset"] == "100"
    body = problem(response)
    assert (
        body["type"] == "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    )
    assert (body["expected-offset"], body["provided-offset"]) == (100, 25)
    assert not response.closes, "a small refused body is drained: the connection goes on"
    assert offset_of(conn, url).headers["upload-offset"] == "100"


def test_append_to_a_completed_upload(conn: RawConnection) -> None:
    url = create(conn, b"complete", complete=True).headers["location"]
    response = append(conn, url, 8, b"", complete=True)
    assert response.status == 400
    assert str(problem(response)["type"]).endswith("#completed-upload")
    more = append(conn, url, 8, b"tail", complete=True)
    assert str(problem(more)["type"]).endswith("#inconsistent-upload-length")


def test_cancellation(conn: RawConnection) -> None:
    url = create(conn, b"abc", complete=False).headers["location"]
    assert conn.request("DELETE", path(url), DRAFT).status == 204
    assert offset_of(conn, url).status == 410


def test_repr_digest_checked(conn: RawConnection) -> None:
    data = os.urandom(MiB)
    good = create(conn, data, complete=True, **{"Repr-Digest": digest_field(data)})
    assert good.status == 201
    assert good.headers["repr-digest"] == digest_field(data)
    bad = create(conn, data, complete=True, **{"Repr-Digest": digest_field(b"other")})
    assert bad.status == 400
    assert "Repr-Digest" in str(problem(bad)["detail"])
    state = offset_of(conn, bad.headers["location"])
    assert (state.headers["upload-complete"], state.headers["upload-offset"]) == ("?0", "0")


def test_http_1_0_clients_get_no_interim_response(server: LiveServer) -> None:
    host = urlsplit(server.url)
    with socket.create_connection((host.hostname, host.port), timeout=20) as sock:
        sock.sendall(
            b"POST /files/ HTTP/1.0\r\nUpload-Draft-Interop-Version: 8\r\n"
            b"Upload-Complete: ?1\r\nContent-Length: 3\r\n\r\nabc"
        )
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.split(b"\r\n", 1)[0].startswith(b"HTTP/1.0 201 ")
    assert b" 104 " not in reply


def test_interim_responses_can_be_turned_off(tmp_path: Path, redis_url: str) -> None:
    env = {"TUSSERVER_INTERIM_RESPONSES": "false"}
    with (
        live_server(tmp_path / "data", redis_url, env=env) as server,
        RawConnection(server.url) as conn,
    ):
        response = conn.request("POST", "/files/", {**DRAFT, "Upload-Complete": "?1"}, b"abc")
        assert response.status == 201
        assert conn.request("HEAD", path(response.headers["location"]), DRAFT).status == 204


NGINX_CONF = """
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
"""


def _nginx() -> str:
    """nginx lives in /usr/sbin, which a normal user's PATH may leave out."""
    found = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    return found or require_executable("nginx", "nginx")


def test_behind_nginx_the_draft_works_without_interim_responses(
    tmp_path: Path, redis_url: str
) -> None:
    """nginx (1.22) forwards a 104 as if it were the final response, so behind a proxy
    (TUSSERVER_BEHIND_PROXY=true) the default `auto` sends none: clients get the 201."""
    env = {"TUSSERVER_BEHIND_PROXY": "true"}
    with live_server(tmp_path / "data", redis_url, env=env) as server:
        conf_dir = tmp_path / "nginx"
        conf_dir.mkdir()
        port = free_port()
        conf = conf_dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=conf_dir, port=port, upstream=server.url))
        nginx = subprocess.Popen([_nginx(), "-c", str(conf), "-p", str(conf_dir)])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "nginx did not start"
                    time.sleep(0.05)
            with RawConnection(f"http://127.0.0.1:{port}") as conn:
                data = os.urandom(MiB)
                created = conn.request(
                    "POST", "/files/", {**DRAFT, "Upload-Complete": "?0"}, data[:1000]
                )
                assert created.status == 201, "the final response, not a forwarded 104"
                url = created.headers["location"]
                assert url.startswith(f"http://127.0.0.1:{port}/files/")
                done = append(conn, url, 1000, data[1000:], complete=True)
                assert done.headers["upload-complete"] == "?1"
            assert requests.get(url, timeout=30).content == data
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
