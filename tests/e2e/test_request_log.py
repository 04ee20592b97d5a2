"""The request log tells what the client got: lines written when a download has finished.

A download cut by an S3 outage (the S3 endpoint is reached through a TCP proxy the test cuts
mid-download) or by a client that goes away is logged with the bytes actually sent and
`cut-short=backend` / `cut-short=client`; the metrics count the same bytes.
"""

from __future__ import annotations

import re
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.live import LiveServer, live_server
from tests.support.rawhttp import RawConnection
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, drop_bucket, make_s3_settings
from tests.support.tcp_proxy import TcpProxy
from tusserver.storage.s3 import S3Store

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
SIZE = 32 * 1024 * 1024  # more than every socket buffer between the store and the client
FIRST = 1024 * 1024


def _upload(server: LiveServer, data: bytes) -> str:
    created = requests.post(
        f"{server.url}/files/", headers={**TUS, "Upload-Length": str(len(data))}, timeout=10
    )
    assert created.status_code == 201
    path = urlsplit(created.headers["Location"]).path
    done = requests.patch(
        f"{server.url}{path}", data=data, headers={**OCTET, "Upload-Offset": "0"}, timeout=120
    )
    assert done.status_code == 204, done.text
    return path


def _log_line(server: LiveServer, start: str, timeout: float = 15) -> str:
    """The request log line that starts with `start` (waits for it to be written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if start in line:
                return line[line.index(start) :]
        time.sleep(0.1)
    raise AssertionError(f"no log line {start!r}:\n{server.log()[-3000:]}")


def _field(line: str, name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", line)
    assert match, line
    return match.group(1)


def _metric(server: LiveServer, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _read_some(conn: RawConnection, path: str, count: int) -> dict[str, str]:
    """Send a GET, read the headers and `count` body bytes; returns the headers."""
    conn.send("GET", path)
    status_line = conn.rfile.readline()
    assert b" 200 " in status_line, status_line
    headers: dict[str, str] = {}
    while (line := conn.rfile.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert len(conn.rfile.read(count)) == count
    return headers


def _read_to_end(conn: RawConnection) -> int:
    received = 0
    conn.sock.settimeout(30)
    try:
        while block := conn.rfile.read1(1024 * 1024):
            received += len(block)
    except ConnectionResetError:
        pass
    return received


@pytest.fixture
def s3_behind_proxy(moto_endpoint: str) -> Iterator[tuple[TcpProxy, dict[str, str]]]:
    """A proxy to the session's moto server, and the server settings that go through it."""
    bucket = f"tus-cut-{uuid.uuid4().hex[:16]}"
    with TcpProxy.to(moto_endpoint) as proxy:
        env = {
            "TUSSERVER_STORAGE": "s3",
            "TUSSERVER_S3_ENDPOINT": proxy.address,
            "TUSSERVER_S3_SECURE": "false",
            "TUSSERVER_S3_ACCESS_KEY": ACCESS_KEY,
            "TUSSERVER_S3_SECRET_KEY": SECRET_KEY,
            "TUSSERVER_S3_REGION": REGION,
            "TUSSERVER_S3_BUCKET": bucket,
            "TUSSERVER_S3_PART_SIZE": "1M",
        }
        try:
            yield proxy, env
        finally:
            drop_bucket(S3Store(make_s3_settings(moto_endpoint, bucket)))


def test_a_download_cut_by_an_s3_outage_is_logged_as_cut_short(
    tmp_path: Path, redis_url: str, s3_behind_proxy: tuple[TcpProxy, dict[str, str]]
) -> None:
    proxy, env = s3_behind_proxy
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        path = _upload(server, b"s" * SIZE)
        served_before = _metric(server, "tusserver_bytes_served_total")
        with RawConnection(server.url) as conn:
            headers = _read_some(conn, path, FIRST)
            assert headers["content-length"] == str(SIZE)
            proxy.cut()  # S3 goes away while the download is under way
            received = FIRST + _read_to_end(conn)
        assert received < SIZE  # the client saw a short body and the end of the connection
        line = _log_line(server, f"GET {path} 200 ")
        assert "cut-short=backend" in line
        assert f"of={SIZE}" in line
        assert "error=backend-unavailable" in line
        sent = int(_field(line, "out"))
        assert received <= sent < SIZE
        proxy.restore()
        assert _metric(server, "tusserver_bytes_served_total") - served_before == sent
        assert _metric(server, 'tusserver_responses_cut_short_total{reason="backend"}') == 1
        assert "Traceback" not in server.log()
        # S3 is back: the same download goes through in full and is logged as such.
        full = requests.get(f"{server.url}{path}", timeout=60)
        assert len(full.content) == SIZE
        lines = [x for x in server.log().splitlines() if f"GET {path} 200 " in x]
        assert f"out={SIZE} " in lines[-1]
        assert "cut-short" not in lines[-1]


def test_a_download_that_fails_before_its_first_byte_is_a_503(
    tmp_path: Path, redis_url: str, s3_behind_proxy: tuple[TcpProxy, dict[str, str]]
) -> None:
    proxy, env = s3_behind_proxy
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        path = _upload(server, b"f" * 1000)
        proxy.cut()
        response = requests.get(f"{server.url}{path}", timeout=60)
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        line = _log_line(server, f"GET {path} 503 ")
        assert "out=" in line


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_download_the_client_abandons_is_logged_as_cut_short(
    tmp_path: Path,
    redis_url: str,
    store: str,
    s3_behind_proxy: tuple[TcpProxy, dict[str, str]],
) -> None:
    env = s3_behind_proxy[1] if store == "s3" else {}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        path = _upload(server, b"c" * SIZE)
        conn = RawConnection(server.url)
        _read_some(conn, path, FIRST)
        # Gone without a goodbye: the server's next write fails.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        line = _log_line(server, f"GET {path} 200 ")
        assert "cut-short=client" in line
        assert f"of={SIZE}" in line
        assert FIRST <= int(_field(line, "out")) < SIZE
        assert _metric(server, 'tusserver_responses_cut_short_total{reason="client"}') == 1
        full = requests.get(f"{server.url}{path}", timeout=60)
        assert len(full.content) == SIZE
        last = [x for x in server.log().splitlines() if f"GET {path} 200 " in x][-1]
        assert f"out={SIZE} " in last and "cut-short" not in last
