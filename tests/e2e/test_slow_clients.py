"""Slow-client defence under gunicorn: header timeout, minimum body rate, connections per client.

Every test runs the real `tusserver serve` (the default gevent worker) and talks to it over raw
sockets, because the behaviour under test is what happens to a connection that is too slow.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.support.live import LiveServer, live_server
from tests.support.tus_http import create_upload, offset_of, open_patch

TUS = {"Tus-Resumable": "1.0.0"}


def connect(server: LiveServer) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=15)


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 15 s pass)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed the connection: a read returns end-of-file (or a reset)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def options_request(host: str) -> bytes:
    return f"OPTIONS /files/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def test_slow_headers_are_cut_off_and_idle_keep_alive_is_not(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"TUSSERVER_HEADER_TIMEOUT": "1", "TUSSERVER_KEEPALIVE_TIMEOUT": "30"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        host = urlsplit(server.url).netloc
        slow = connect(server)
        idle = connect(server)
        try:
            # A client sending its request head a little at a time, never finishing it.
            slow.sendall(b"PATCH /files/abc HTTP/1.1\r\nHost: x\r\n")
            # A keep-alive client: one request answered, then quiet for longer than the
            # header timeout, then a second request on the same connection.
            idle.sendall(options_request(host))
            assert idle.recv(65536).startswith(b"HTTP/1.1 204")
            cut_off = False
            for _ in range(6):
                time.sleep(0.5)
                try:
                    slow.sendall(b"X")  # still trickling: bytes do not extend the deadline
                except OSError:
                    cut_off = True  # the server has closed the connection already
                    break
            assert cut_off or closed_by_server(slow), "a head sent over 3 s was not cut off"
            idle.sendall(options_request(host))
            assert idle.recv(65536).startswith(b"HTTP/1.1 204"), "idle keep-alive was closed"
            # Meanwhile the server answers everybody else.
            assert requests.options(f"{server.url}/files/", timeout=5).status_code == 204
        finally:
            slow.close()
            idle.close()


def test_a_body_below_the_minimum_rate_is_ended_and_keeps_its_bytes(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"TUSSERVER_MIN_RATE": "1000", "TUSSERVER_MIN_RATE_WINDOW": "2"}
    data = os.urandom(100_000)
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        url = create_upload(server, len(data))
        slow = open_patch(url, 0, len(data), data[:100])
        sent = 100
        try:
            answer = b""
            slow.settimeout(0.5)
            for _ in range(30):  # 100 bytes every 0.5 s: 200 B/s against a 1000 B/s minimum
                try:
                    slow.sendall(data[sent : sent + 100])
                    sent += 100
                except OSError:
                    break  # the server shut its side: the PATCH was ended
                try:
                    answer = slow.recv(65536)
                    break
                except TimeoutError:
                    continue
        finally:
            slow.close()
        assert answer.startswith(b"HTTP/1.1 204"), f"the slow PATCH was not ended: {answer[:80]!r}"
        committed = offset_of(url)
        assert 0 < committed <= sent, "the bytes that arrived were not kept"
        assert f"Upload-Offset: {committed}".encode() in answer
        assert requests.get(url, timeout=10).status_code == 409  # incomplete, as it should be
        head = requests.head(url, headers=TUS, timeout=10)
        assert head.headers["Upload-Offset"] == str(committed)


def test_a_slow_client_steadily_above_the_rate_is_never_cut_off(
    tmp_path: Path, redis_url: str
) -> None:
    env = {"TUSSERVER_MIN_RATE": "1000", "TUSSERVER_MIN_RATE_WINDOW": "1"}
    data = os.urandom(10_000)
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        url = create_upload(server, len(data))
        steady = open_patch(url, 0, len(data), data[:250])
        try:
            for start in range(250, len(data), 250):  # 250 B every 0.1 s: 2500 B/s, for ~4 s
                time.sleep(0.1)
                steady.sendall(data[start : start + 250])
            steady.settimeout(15)
            answer = steady.recv(65536)
        finally:
            steady.close()
        assert answer.startswith(b"HTTP/1.1 204"), answer[:80]
        assert f"Upload-Offset: {len(data)}".encode() in answer
        assert requests.get(url, timeout=10).content == data


def test_connections_over_the_per_client_cap_get_429(tmp_path: Path, redis_url: str) -> None:
    env = {"TUSSERVER_MAX_CONNECTIONS_PER_CLIENT": "3"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=2) as server:
        host = urlsplit(server.url).netloc
        held = [connect(server) for _ in range(3)]
        try:
            for sock in held:  # three keep-alive connections, each answered once
                sock.sendall(options_request(host))
                assert sock.recv(65536).startswith(b"HTTP/1.1 204")
            extra = connect(server)
            extra.sendall(options_request(host))
            answer = read_answer(extra)
            extra.close()
            assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
            assert b"Retry-After" in answer
            held.pop().close()  # one of the three goes away: a new one is served again
            time.sleep(0.5)
            with requests.Session() as session:  # closed here, not whenever it is collected
                assert session.options(f"{server.url}/files/", timeout=5).status_code == 204
            time.sleep(0.5)
            # X-Forwarded-For is ignored without TUSSERVER_BEHIND_PROXY: still the same peer.
            spoofed = connect(server)
            held.append(spoofed)
            spoofed.sendall(options_request(host))
            assert spoofed.recv(65536).startswith(b"HTTP/1.1 204")
            again = connect(server)
            again.sendall(
                f"OPTIONS /files/ HTTP/1.1\r\nHost: {host}\r\n"
                "X-Forwarded-For: 203.0.113.9\r\n\r\n".encode()
            )
            assert read_answer(again).startswith(b"HTTP/1.1 429")
            again.close()
        finally:
            for sock in held:
                sock.close()


def test_behind_a_proxy_the_cap_counts_forwarded_clients(tmp_path: Path, redis_url: str) -> None:
    env = {"TUSSERVER_MAX_CONNECTIONS_PER_CLIENT": "2", "TUSSERVER_BEHIND_PROXY": "true"}
    data = os.urandom(1000)
    with live_server(tmp_path / "data", redis_url, env=env, workers=2) as server:
        urls = [create_upload(server, len(data)) for _ in range(3)]
        forwarded = {"X-Forwarded-For": "198.51.100.7"}
        running = []
        try:
            for url in urls[:2]:  # two uploads of one client in flight (bodies not finished)
                sock = open_patch_as(url, forwarded, len(data), data[:10])
                running.append(sock)
            time.sleep(0.5)
            third = requests.patch(
                urls[2],
                data=data,
                headers={
                    **TUS,
                    **forwarded,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                timeout=10,
            )
            assert third.status_code == 429
            other = requests.patch(
                urls[2],
                data=data,
                headers={
                    **TUS,
                    "X-Forwarded-For": "198.51.100.8",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
                timeout=10,
            )
            assert other.status_code == 204, "another client behind the same proxy was refused"
        finally:
            for sock in running:
                sock.close()


def open_patch_as(url: str, headers: dict[str, str], declared: int, first: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n{extra}"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock
