"""Bodies read straight from gunicorn's socket (tusserver/wsgi_input.py) keep HTTP intact.

One keep-alive connection carries PATCHes that are read in full, refused before being read,
small enough to arrive with the request head, and followed by the next request at once; the
stored bytes and every answer must be exactly right.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.live import LiveServer

MiB = 1024 * 1024


class Raw:
    """A raw keep-alive HTTP/1.1 connection (no client library that could hide a framing bug)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.pending = b""

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", "Tus-Resumable: 1.0.0"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.pending:
            data = self.sock.recv(65536)
            assert data, "connection closed before a response"
            self.pending += data
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.pending) < length:
            data = self.sock.recv(65536)
            assert data, "connection closed inside a response body"
            self.pending += data
        body, self.pending = self.pending[:length], self.pending[length:]
        return int(status_line.split()[1]), headers, body

    def patch(self, path: str, offset: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
        }
        self.send("PATCH", path, headers, body)
        return self.response()


def test_keep_alive_patches_read_refused_and_tiny_stay_in_step(
    server: LiveServer, tmp_path: Path
) -> None:
    big = hashlib.sha512(b"a").digest() * (3 * MiB // 64) + b"tail"
    tiny = b"0123456789"
    size = len(big) + len(tiny) + len(big)
    raw = Raw(server.url)
    raw.send("POST", "/files/", {"Upload-Length": str(size)})
    status, headers, _ = raw.response()
    assert status == 201
    path = urlsplit(headers["location"]).path

    status, headers, _ = raw.patch(path, 0, big)
    assert (status, headers["upload-offset"]) == (204, str(len(big)))
    # Refused before a byte of the body is read: gunicorn must drain it (it does so for bodies
    # up to 64 KiB, and closes the connection after larger ones), not parse it as a request.
    status, headers, _ = raw.patch(path, 0, big[: 32 * 1024])
    assert (status, headers["upload-offset"]) == (409, str(len(big)))
    status, headers, _ = raw.patch(path, len(big), tiny)
    assert (status, headers["upload-offset"]) == (204, str(len(big) + len(tiny)))
    # Two requests in one send: the second must not be swallowed as body bytes.
    raw.send("HEAD", path, {})
    raw.send(
        "PATCH",
        path,
        {
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(len(big) + len(tiny)),
        },
        big,
    )
    status, headers, _ = raw.response(head_only=True)
    assert (status, headers["upload-offset"]) == (200, str(len(big) + len(tiny)))
    status, headers, _ = raw.response()
    assert (status, headers["upload-offset"]) == (204, str(size))

    raw.send("GET", path, {})
    status, _, body = raw.response()
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(big + tiny + big).digest()
