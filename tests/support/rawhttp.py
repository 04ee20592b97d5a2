"""A raw HTTP/1.1 client on one keep-alive socket, for tests that watch what a connection does.

Client libraries hide what happens on the wire: they reconnect, retry idempotent requests and
drop the `Connection` header. `RawConnection` sends exactly the bytes asked for, sends a request
body from a helper thread (so a server that answers before reading the body does not deadlock
the test), and parses responses one by one from the same socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def closes(self) -> bool:
        """The response said the connection ends after it."""
        return self.headers.get("connection", "").lower() == "close"


class RawConnection:
    """One TCP connection to `url`'s host and port."""

    def __init__(self, url: str, timeout: float = 20):
        parts = urlsplit(url)
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")
        self._sender: threading.Thread | None = None
        self.send_error: BaseException | None = None

    def close(self) -> None:
        if self._sender is not None:
            self._sender.join(timeout=10)
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Send a request; the body goes out from a thread while the caller reads the answer."""
        if self._sender is not None:
            self._sender.join(timeout=30)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        sent_headers = dict(headers or {})
        if body and "Transfer-Encoding" not in sent_headers:
            sent_headers.setdefault("Content-Length", str(len(body)))
        lines += [f"{name}: {value}" for name, value in sent_headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.send_error = None
        if body:
            self._sender = threading.Thread(target=self._send_body, args=(body,), daemon=True)
            self._sender.start()

    def _send_body(self, body: bytes) -> None:
        try:
            self.sock.sendall(body)
        except OSError as exc:  # the server closed while the body was still going out
            self.send_error = exc

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> RawResponse:
        self.send(method, path, headers, body)
        return self.read_response(head=method == "HEAD")

    def read_response(self, head: bool = False) -> RawResponse:
        status_line = self.rfile.readline()
        if not status_line:
            raise ConnectionError("server closed the connection without sending a response")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if head or status in (204, 304) or 100 <= status < 200:
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked()
        elif "content-length" in headers:
            body = self.rfile.read(int(headers["content-length"]))
        return RawResponse(status, headers, body)

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(data)
            data += self.rfile.read(size)
            self.rfile.readline()

    def closed_by_server(self, wait: float = 5) -> bool:
        """True once the server has closed its side (end of file or reset) within `wait`."""
        self.sock.settimeout(wait)
        try:
            return self.rfile.read(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
