"""Through the real nginx, configured from compose/nginx/tusserver.conf.template.

nginx is Debian's `nginx` package (`.ci/run` installs it); it runs as an ordinary process on a
free port with its pid file and temporary folders in the test's folder (tests/support/nginx.py),
in front of a live `tusserver serve` with TUSSERVER_BEHIND_PROXY=true.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.data import MiB, expected_sha256, pieces
from tests.support.live import LiveServer, live_server
from tests.support.nginx import Nginx, nginx_binary, running_nginx
from tests.support.procstats import PeakRss, tree_rss
from tests.support.slow_load import run_load
from tests.support.tools import missing

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
RSS_GROWTH_LIMIT = 64 * MiB


@pytest.fixture
def proxied(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveServer, Nginx]]:
    binary = nginx_binary()
    if binary is None:
        missing("nginx is not installed (Debian package `nginx`)")
        raise AssertionError("unreachable")
    env = {"TUSSERVER_BEHIND_PROXY": "true", "TUSSERVER_FSYNC": "false"}
    with (
        live_server(tmp_path / "data", redis_url, env=env) as server,
        running_nginx(binary, int(server.url.rsplit(":", 1)[1]), tmp_path / "nginx") as nginx,
    ):
        yield server, nginx


def create(base: str, length: int) -> str:
    answer = requests.post(
        f"{base}/files/", headers={**TUS, "Upload-Length": str(length)}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


def send_patch(url: str, offset: int, size: int, start: int) -> http.client.HTTPResponse:
    """One PATCH of `size` pattern bytes (from `start` in the pattern), streamed from memory."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    connection.putrequest("PATCH", parts.path)
    for name, value in {**OCTET, "Upload-Offset": str(offset)}.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    for piece in pieces(start, size):
        connection.send(piece)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer


def test_location_urls_point_at_nginx(proxied: tuple[LiveServer, Nginx]) -> None:
    _server, nginx = proxied
    url = create(nginx.url, 10)
    assert url.startswith(f"{nginx.url}/files/"), url
    head = requests.head(url, headers=TUS, timeout=10)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    # A client's own X-Forwarded-Host is replaced by nginx, so it cannot redirect uploads.
    spoofed = requests.post(
        f"{nginx.url}/files/",
        headers={**TUS, "Upload-Length": "1", "X-Forwarded-Host": "evil.example"},
        timeout=10,
    )
    assert spoofed.headers["Location"].startswith(f"{nginx.url}/files/")


def test_a_256_mib_upload_streams_through_nginx(proxied: tuple[LiveServer, Nginx]) -> None:
    server, nginx = proxied
    size = 256 * MiB
    url = create(nginx.url, size)
    idle = tree_rss(server.pid)
    seen_on_disk: list[Path] = []
    stop = threading.Event()

    def watch_nginx_temp() -> None:  # nginx must never spool the body to a file
        while not stop.wait(0.05):
            seen_on_disk.extend(nginx.buffered_files())

    watcher = threading.Thread(target=watch_nginx_temp, daemon=True)
    watcher.start()
    try:
        with PeakRss(server.pid) as rss:
            answer = send_patch(url, 0, size, 0)
    finally:
        stop.set()
        watcher.join()
    assert answer.status == 204
    assert answer.getheader("Upload-Offset") == str(size)
    assert rss.peak - idle < RSS_GROWTH_LIMIT, f"server RSS grew {(rss.peak - idle) / MiB:.0f} MiB"
    assert not seen_on_disk, f"nginx buffered to disk: {seen_on_disk[:3]}"
    assert not nginx.buffered_files()
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=60) as download:
        assert download.status_code == 200
        for block in download.iter_content(MiB):
            digest.update(block)
    assert digest.hexdigest() == expected_sha256(size)
    assert not nginx.buffered_files(), "nginx wrote the download to proxy_temp"


def test_an_interrupted_upload_through_nginx_resumes(proxied: tuple[LiveServer, Nginx]) -> None:
    server, nginx = proxied
    size = 8 * MiB
    url = create(nginx.url, size)
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {size}\r\n\r\n".encode()
    )
    for piece in pieces(0, 3 * MiB):
        sock.sendall(piece)
    time.sleep(0.5)
    sock.close()  # the client vanishes mid-body; nginx ends its upstream request
    offset = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        head = requests.head(url, headers=TUS, timeout=10)
        offset = int(head.headers["Upload-Offset"])
        if offset and requests.head(url, headers=TUS, timeout=10).headers["Upload-Offset"] == str(
            offset
        ):
            break
        time.sleep(0.2)
    assert 0 < offset <= 3 * MiB, "the bytes that reached the server were not kept"
    answer = send_patch(url, offset, size - offset, offset)
    assert answer.status == 204, server.log()[-4000:]
    body = requests.get(url, timeout=60).content
    assert hashlib.sha256(body).hexdigest() == expected_sha256(size)


def test_slow_clients_through_nginx(proxied: tuple[LiveServer, Nginx]) -> None:
    """The slow-client load, reduced (bench/slow_clients.py runs the full size)."""
    _server, nginx = proxied
    result = run_load(
        "127.0.0.1",
        nginx.port,
        uploads=100,
        idle=300,
        rate=16 * 1024,
        patch_bytes=32 * 1024,
        ramp=3.0,
        seconds=8.0,
        probe_pause=0.2,
    )
    summary = result.summary()
    assert summary["errors"] == {}, summary["errors"]
    assert result.stalled == 0, f"{result.stalled} uploads made no progress through nginx"
    assert summary["probes"] > 0 and not result.probe_errors, result.probe_errors[:3]
    assert summary["idle_held"] == 300, "nginx or the app dropped idle keep-alive connections"
    assert not nginx.buffered_files()
