"""How fast an upload resumes after a crash: a worker's kill -9, Valkey's kill -9, a full restart.

Each scenario starts `tusserver serve` (tests/support/live.py) on a fresh data directory with
the embedded Valkey, leaves a PATCH hanging mid-body, kills something with SIGKILL, and then
acts as a tus client: HEAD, then a small PATCH at the offset HEAD gave, retried every 50 ms
until it is accepted. The time from the kill (or from the restarted server answering) to that
accepted PATCH is the recovery time. Every scenario ends the upload and checks its sha256, and
that no offset the server acknowledged ever went backwards.

`bench/recovery.py --runs 5` times the scenarios; `tests/faults/test_crashes.py` runs each
once for its checks. Shared here so neither imports the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.support.live import LiveServer, start_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
SIZE = 4 * 1024 * 1024
STEP = 64 * 1024


class Client:
    """A tus client that remembers every offset the server acknowledged."""

    def __init__(self, base: str, data: bytes):
        self.base = base
        self.data = data
        self.acknowledged: list[int] = []
        response = requests.post(
            f"{base}/files/", headers={**TUS, "Upload-Length": str(len(data))}, timeout=10
        )
        assert response.status_code == 201, response.text
        self.path = urlsplit(response.headers["Location"]).path

    def ack(self, offset: int) -> None:
        if self.acknowledged:
            assert offset >= self.acknowledged[-1], f"went back: {self.acknowledged} {offset}"
        self.acknowledged.append(offset)

    def head(self) -> int | None:
        with contextlib.suppress(requests.RequestException):
            response = requests.head(self.base + self.path, headers=TUS, timeout=2)
            if response.status_code == 200:
                offset = int(response.headers["Upload-Offset"])
                self.ack(offset)
                return offset
        return None

    def patch(self, offset: int, size: int) -> int | None:
        with contextlib.suppress(requests.RequestException):
            response = requests.patch(
                self.base + self.path,
                data=self.data[offset : offset + size],
                headers={**OCTET, "Upload-Offset": str(offset)},
                timeout=10,
            )
            if response.status_code == 204:
                new = int(response.headers["Upload-Offset"])
                self.ack(new)
                return new
        return None

    def resume_once(self, deadline: float = 60) -> float:
        """Retry HEAD + a small PATCH until one is accepted; seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            offset = self.head()
            if offset is not None and self.patch(offset, STEP) is not None:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError("the upload did not resume within the deadline")

    def hang(self, offset: int) -> socket.socket:
        """A PATCH that declares the rest of the file, sends a little and then stalls."""
        parts = urlsplit(self.base)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        rest = len(self.data) - offset
        sock.sendall(
            (
                f"PATCH {self.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
                f"Content-Length: {rest}\r\n\r\n"
            ).encode()
            + self.data[offset : offset + STEP]
        )
        time.sleep(0.5)  # the server is now inside the PATCH, holding the lock
        return sock

    def finish(self) -> None:
        offset = self.head()
        while offset is None or offset < len(self.data):
            if offset is not None:
                self.patch(offset, 1024 * 1024)
            offset = self.head()
        body = requests.get(self.base + self.path, timeout=30).content
        assert hashlib.sha256(body).digest() == hashlib.sha256(self.data).digest(), "sha256"


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def is_python(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("python")
    return False


def workers(server: LiveServer) -> list[int]:
    return [pid for pid in children(server.pid) if is_python(pid)]


def valkey(server: LiveServer) -> int:
    return next(pid for pid in children(server.pid) if not is_python(pid))


def kill_tree(server: LiveServer) -> None:
    for pid in [*children(server.pid), server.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()


def worker_kill(data_dir: Path) -> float:
    """kill -9 of the worker serving a PATCH: seconds until the upload resumes."""
    server = start_server(data_dir, workers=1)
    try:
        client = Client(server.url, os.urandom(SIZE))
        assert client.patch(0, SIZE // 2) == SIZE // 2
        hanging = client.hang(SIZE // 2)
        (worker,) = workers(server)
        os.kill(worker, signal.SIGKILL)
        hanging.close()
        took = client.resume_once()
        client.finish()
        return took
    finally:
        server.stop()


def valkey_kill(data_dir: Path) -> float:
    """kill -9 of the embedded Valkey mid-PATCH: seconds until the upload resumes."""
    server = start_server(data_dir, workers=1)
    try:
        client = Client(server.url, os.urandom(SIZE))
        assert client.patch(0, SIZE // 2) == SIZE // 2
        hanging = client.hang(SIZE // 2)
        os.kill(valkey(server), signal.SIGKILL)
        hanging.close()
        took = client.resume_once()
        client.finish()
        return took
    finally:
        server.stop()


def full_restart(data_dir: Path) -> float:
    """kill -9 of every process mid-PATCH, then a restart: seconds from healthy to resumed."""
    server = start_server(data_dir, workers=1)
    client = Client(server.url, os.urandom(SIZE))
    assert client.patch(0, SIZE // 2) == SIZE // 2
    hanging = client.hang(SIZE // 2)
    kill_tree(server)
    hanging.close()
    port = int(urlsplit(server.url).port or 0)
    restarted = start_server(data_dir, workers=1, port=port)
    try:
        took = client.resume_once()
        client.finish()
        return took
    finally:
        restarted.stop()


SCENARIOS: dict[str, Callable[[Path], float]] = {
    "worker kill -9": worker_kill,
    "Valkey kill -9": valkey_kill,
    "full restart (after healthy)": full_restart,
}
