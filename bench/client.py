"""The benchmark's load generator: a raw-socket tus client, run in separate processes.

The client must never be the bottleneck, so it does as little as it can per byte:
- upload bodies come from one pre-generated pattern buffer (made once, shared by the forked
  client processes copy-on-write) and go out as `memoryview` slices with `sendall`, no copies;
- downloads are read with `recv_into` into one preallocated buffer and thrown away;
- every client runs in its own process (`ClientPool`), so it never competes with another
  client, nor with the coordinator, for a GIL.

The pattern (`tests/support/data.py`, shared with the memory tests) is real random bytes with
an odd period (16 MiB + 4099), made once, so a server that drops, duplicates or misplaces a
piece of a body stores a file whose sha256 differs from `expected_sha256(size)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import socket
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.data import MAX_PIECE, expected_sha256, pattern, pieces

__all__ = ["expected_sha256", "pattern", "pieces"]  # the benchmark's data, from tests/support

MiB = 1024 * 1024
GiB = 1024 * MiB
RECV_BUFFER = 4 * MiB


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(8 * MiB)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection with just what the benchmark needs."""

    def __init__(self, host: str, port: int, timeout: float = 300):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = bytearray()  # bytes received past the last response head
        self.closed = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def read_head(self) -> tuple[int, dict[str, str]]:
        while True:
            end = self.pending.find(b"\r\n\r\n")
            if end >= 0:
                break
            data = self.sock.recv(65536)
            if not data:
                raise HttpError("connection closed before a response")
            self.pending += data
        head = bytes(self.pending[:end]).decode("latin-1")
        del self.pending[: end + 4]
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close":
            self.closed = True
        return status, headers

    def read_body(self, count: int, buffer: bytearray, hasher: Any | None = None) -> int:
        """Read and drop `count` body bytes (feeding `hasher` if given); returns bytes read."""
        got = 0
        if self.pending:
            take = min(count, len(self.pending))
            if hasher is not None:
                hasher.update(self.pending[:take])
            del self.pending[:take]
            got = take
        view = memoryview(buffer)
        while got < count:
            n = self.sock.recv_into(view, min(len(buffer), count - got))
            if n == 0:
                raise HttpError(f"connection closed after {got} of {count} body bytes")
            if hasher is not None:
                hasher.update(view[:n])
            got += n
        return got

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Iterator[memoryview] | None = None,
        small_buffer: bytearray | None = None,
    ) -> tuple[int, dict[str, str]]:
        """Send a request (streaming `body`), read the response and drop its (small) body."""
        self.send_head(method, path, headers)
        if body is not None:
            for piece in body:
                self.sock.sendall(piece)
        status, response_headers = self.read_head()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return status, response_headers
        buffer = small_buffer or bytearray(65536)
        if "chunked" in response_headers.get("transfer-encoding", "").lower():
            self.read_chunked(buffer)
        else:
            length = int(response_headers.get("content-length", "0") or 0)
            if length:
                self.read_body(length, buffer)
        return status, response_headers

    def _read_line(self) -> bytes:
        while (end := self.pending.find(b"\r\n")) < 0:
            data = self.sock.recv(65536)
            if not data:
                raise HttpError("connection closed inside a chunked body")
            self.pending += data
        line = bytes(self.pending[:end])
        del self.pending[: end + 2]
        return line

    def read_chunked(self, buffer: bytearray) -> None:
        """Read and drop a chunked body (and its trailers)."""
        while True:
            size = int(self._read_line().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._read_line():
                    pass
                return
            self.read_body(size + 2, buffer)


TUS = {"Tus-Resumable": "1.0.0"}


def _path_of(location: str) -> str:
    return urlsplit(location).path if "://" in location else location


def upload(
    host: str,
    port: int,
    size: int,
    patch_size: int | None = None,
    creation_path: str = "/files/",
    extra_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One tus upload: POST, then PATCHes of `patch_size` (None: one PATCH). Timed.

    `extra_headers` go on every request (e.g. `Authorization` for a server with accounts)."""
    extra = extra_headers or {}
    started = time.monotonic()
    connection = Connection(host, port)
    try:
        status, headers = connection.request(
            "POST",
            creation_path,
            {**TUS, "Upload-Length": str(size), "Content-Length": "0", **extra},
        )
        if status != 201:
            raise HttpError(f"POST answered {status}")
        path = _path_of(headers["location"])
        offset = 0
        patches = 0
        step = patch_size or size
        while offset < size:
            count = min(step, size - offset)
            if connection.closed:
                connection.close()
                connection = Connection(host, port)
            status, headers = connection.request(
                "PATCH",
                path,
                {
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Content-Length": str(count),
                    **extra,
                },
                pieces(offset, count),
            )
            if status != 204:
                raise HttpError(f"PATCH at {offset} answered {status}")
            new_offset = int(headers.get("upload-offset", "-1"))
            if new_offset != offset + count:
                raise HttpError(f"PATCH at {offset} answered offset {new_offset}")
            offset = new_offset
            patches += 1
        ended = time.monotonic()
    finally:
        connection.close()
    upload_id = path.rstrip("/").rsplit("/", 1)[-1]
    return {
        "id": upload_id,
        "path": path,
        "bytes": size,
        "patches": patches,
        "started": started,
        "ended": ended,
    }


def download(
    host: str,
    port: int,
    path: str,
    size: int,
    range_size: int | None = None,
    verify: bool = False,
) -> dict[str, Any]:
    """GET the whole upload, or read it in consecutive `range_size` Range requests. Timed."""
    buffer = bytearray(RECV_BUFFER)
    hasher = hashlib.sha256() if verify else None
    started = time.monotonic()
    connection = Connection(host, port)
    got = 0
    requests = 0
    try:
        if range_size is None:
            connection.send_head("GET", path, {})
            status, headers = connection.read_head()
            if status != 200:
                raise HttpError(f"GET answered {status}")
            length = int(headers.get("content-length", "-1"))
            if length != size:
                raise HttpError(f"GET sent Content-Length {length}, expected {size}")
            got = connection.read_body(size, buffer, hasher)
            requests = 1
        else:
            while got < size:
                last = min(got + range_size, size) - 1
                if connection.closed:
                    connection.close()
                    connection = Connection(host, port)
                connection.send_head("GET", path, {"Range": f"bytes={got}-{last}"})
                status, headers = connection.read_head()
                if status != 206:
                    raise HttpError(f"Range GET answered {status} (no Range support?)")
                length = int(headers.get("content-length", "-1"))
                if length != last + 1 - got:
                    raise HttpError(f"Range GET sent {length} bytes, expected {last + 1 - got}")
                got += connection.read_body(length, buffer, hasher)
                requests += 1
        ended = time.monotonic()
    finally:
        connection.close()
    return {
        "bytes": got,
        "requests": requests,
        "started": started,
        "ended": ended,
        "sha256": hasher.hexdigest() if hasher else None,
    }


def small_requests(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    """`connections` keep-alive connections (threads) sending `method path` for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        connection = Connection(host, port, timeout=10)
        small = bytearray(65536)
        mine = latencies[index]
        try:
            while True:
                begun = time.monotonic()
                if begun >= deadline:
                    return
                if connection.closed:
                    connection.close()
                    connection = Connection(host, port, timeout=10)
                status, _ = connection.request(method, path, headers, small_buffer=small)
                if 200 <= status < 300:
                    mine.append(time.monotonic() - begun)
                else:  # an error is not throughput (as wrk's non-2xx count)
                    errors[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    return {
        "latencies": [x for chunk in latencies for x in chunk],
        "errors": sum(errors),
        "started": started,
        "ended": ended,
    }


# -- client processes ----------------------------------------------------------------------

JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "upload": upload,
    "download": download,
    "small": small_requests,
}


def _serve(connection: Any) -> None:
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        name, kwargs = message
        try:
            connection.send(("ok", JOBS[name](**kwargs)))
        except Exception as exc:
            connection.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


@dataclass
class ClientPool:
    """Long-lived client processes, forked early (before the coordinator starts threads)."""

    size: int
    _pipes: list[Any] = field(default_factory=list)
    _processes: list[Any] = field(default_factory=list)

    def start(self) -> ClientPool:
        pattern()  # made before the fork, so every client shares the same pages
        context = multiprocessing.get_context("fork")
        for _ in range(self.size):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child,), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)
        return self

    def run(self, jobs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Run jobs at once, one per client process; raises if any failed."""
        if len(jobs) > self.size:
            raise ValueError(f"{len(jobs)} jobs for {self.size} client processes")
        for pipe, job in zip(self._pipes, jobs, strict=False):
            pipe.send(job)
        results = [pipe.recv() for pipe in self._pipes[: len(jobs)]]
        failures = [payload for status, payload in results if status != "ok"]
        if failures:
            raise HttpError(failures[0])
        return [payload for _, payload in results]

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(None)
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes]


# -- the null sink: what the client alone can do --------------------------------------------


class _NullHandler(socketserver.BaseRequestHandler):
    """Answers tus requests without storing anything; GET sends `size` zero bytes."""

    zeros = memoryview(bytes(MAX_PIECE))

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection.__new__(Connection)
        connection.sock, connection.pending, connection.closed = sock, bytearray(), False
        buffer = bytearray(RECV_BUFFER)
        with contextlib.suppress(OSError, HttpError, ValueError):
            while True:
                method, path, headers = self._read_request(connection)
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    connection.read_body(length, buffer)
                if method == "POST":
                    size = headers.get("upload-length", "0")
                    reply = f"HTTP/1.1 201 Created\r\nLocation: /files/null-{size}\r\n"
                    sock.sendall((reply + "Content-Length: 0\r\n\r\n").encode())
                elif method == "PATCH":
                    offset = int(headers.get("upload-offset", "0")) + length
                    reply = f"HTTP/1.1 204 No Content\r\nUpload-Offset: {offset}\r\n\r\n"
                    sock.sendall(reply.encode())
                elif method == "GET":
                    self._get(sock, path, headers)
                else:
                    sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    @staticmethod
    def _read_request(connection: Connection) -> tuple[str, str, dict[str, str]]:
        while b"\r\n\r\n" not in connection.pending:
            data = connection.sock.recv(65536)
            if not data:
                raise HttpError("closed")
            connection.pending += data
        end = connection.pending.find(b"\r\n\r\n")
        head = bytes(connection.pending[:end]).decode("latin-1")
        del connection.pending[: end + 4]
        request_line, *lines = head.split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, path, headers

    def _get(self, sock: socket.socket, path: str, headers: dict[str, str]) -> None:
        size = int(path.rsplit("-", 1)[-1])
        start, end, status = 0, size, "200 OK"
        if "range" in headers:
            first, _, last = headers["range"].removeprefix("bytes=").partition("-")
            start, end, status = int(first), int(last) + 1, "206 Partial Content"
        sock.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {end - start}\r\n\r\n".encode())
        remaining = end - start
        while remaining:
            count = min(remaining, MAX_PIECE)
            sock.sendall(self.zeros[:count])
            remaining -= count


class _ForkingServer(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def start_null_sink(port: int) -> multiprocessing.Process:
    """A forking null server on 127.0.0.1:port, in its own process."""

    def serve() -> None:
        with _ForkingServer(("127.0.0.1", port), _NullHandler) as server:
            server.serve_forever()

    process = multiprocessing.get_context("fork").Process(target=serve, daemon=True)
    process.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process
        time.sleep(0.05)
    raise RuntimeError("null sink did not start")


def stop_process(process: multiprocessing.Process) -> None:
    if process.is_alive() and process.pid:
        os.kill(process.pid, 15)
        process.join(timeout=5)
