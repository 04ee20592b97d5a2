"""tus over real HTTP against a live server (requests, and raw sockets for cut-short bodies)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import requests

from tests.support.live import LiveServer

TUS = {"Tus-Resumable": "1.0.0"}


def create_upload(server: LiveServer, length: int) -> str:
    response = requests.post(
        f"{server.url}/files/", headers={**TUS, "Upload-Length": str(length)}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def offset_of(url: str) -> int:
    response = requests.head(url, headers=TUS, timeout=10)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def open_patch(url: str, offset: int, declared: int, first_bytes: bytes) -> socket.socket:
    """Start a PATCH on a raw socket: headers for `declared` bytes, then only `first_bytes`."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + first_bytes)
    return sock


def wait_for_offset(url: str, expected: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    offset = offset_of(url)
    while offset != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        offset = offset_of(url)
    return offset


def patch(url: str, offset: int, data: bytes) -> requests.Response:
    headers = {
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": str(offset),
    }
    return requests.patch(url, data=data, headers=headers, timeout=30)
