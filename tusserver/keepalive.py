"""Honest keep-alive: after a response the connection is ready for the next request, or it says
`Connection: close` and really closes.

When a request is refused before its body was read (409 to a PATCH at the wrong offset, 404 to
a JSON POST, 413, 415, ...), the body is still on the socket. gunicorn answers with
`Connection: keep-alive` anyway and only afterwards discards at most 64 KiB of what is left;
when more is left it closes the connection, and the client's next request on that connection
fails with "server disconnected without sending a response", which a POST or PATCH cannot
safely retry.

`SettleBody` is WSGI middleware that decides *before* the response headers go out, for every
route and every status (so new routes are covered without doing anything):

- the whole body was read (the normal case): nothing to do;
- what is left is small (at most `DRAIN_MAX_BYTES`, arriving within `DRAIN_SECONDS`): it is read
  and thrown away, and the connection stays open for the next request;
- otherwise (a large body, a slow client, a body that failed or was cut, a client that asked to
  close): the server is told to close, so the response carries `Connection: close` and the
  socket is closed after it (gunicorn half-closes and lingers, so the client reads the answer).

gunicorn ignores a `Connection` header set by the application (PEP 3333 forbids hop-by-hop
headers), so the close goes through gunicorn's own `Response.force_close()`: `start_response`
is that response's bound method. Under any other server nothing is forced.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

DRAIN_MAX_BYTES = 4 * 1024 * 1024
"""The most unread body bytes discarded to keep a connection; a larger rest closes it instead.

At loopback or LAN speed 4 MiB take a few milliseconds, far less than a new connection (and TLS
handshake) costs the client; a body known to be larger is not read at all."""

DRAIN_SECONDS = 1.0
"""How long discarding may take before the connection is closed instead (a slow client)."""

DRAIN_BLOCK = 64 * 1024

CONNECTION_KEY = "tusserver.connection"
"""Environ key: `"keep-alive"` or `"close"`, what was decided (the request log shows it)."""

BODY_KEY = "tusserver.body"
"""Environ key a view sets to its `BodyReader`: an interrupted body closes the connection,
because its socket's read side was shut down."""

StartResponse = Callable[..., Any]


class SettleBody:
    """WSGI middleware: discard a small unread request body, or close the connection."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        max_bytes: int = DRAIN_MAX_BYTES,
        seconds: float = DRAIN_SECONDS,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        pending = _Pending(self, environ, start_response)
        try:
            result = self.app(environ, pending.start_response)
        except BaseException:
            pending.close_connection()
            raise
        pending.settle()
        return result

    def keeps_connection(self, environ: dict[str, Any]) -> bool:
        """Read what is left of the body, if that is cheap; True if the connection can go on."""
        stream = environ.get("wsgi.input")
        if stream is None or getattr(stream, "failed", False):
            return stream is None
        body = environ.get(BODY_KEY)
        if body is not None and getattr(body, "interrupted", None) is not None:
            return False
        if _client_closes(environ):
            return False
        if not _has_body(environ):
            return True
        left = _known_remaining(stream)
        if left == 0:
            return True
        if left is not None and left > self.max_bytes:
            return False
        drained = self._drain(stream, environ.get("gunicorn.socket"))
        if drained is None or getattr(stream, "failed", False):
            return False
        # Fewer bytes than were due: the client went away before the end of its body.
        return left is None or drained >= left

    def _drain(self, stream: Any, sock: socket.socket | None) -> int | None:
        """Discard the body's rest; its size, or None when it is too long, slow or broken."""
        deadline = time.monotonic() + self.seconds
        prior = _timeout_of(sock)
        drained = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if sock is not None:
                    sock.settimeout(remaining)
                try:
                    data = stream.read(DRAIN_BLOCK)
                except Exception:  # timeout, reset, malformed chunk: the stream is unusable
                    return None
                if not data:
                    return drained
                drained += len(data)
                if drained > self.max_bytes:
                    return None
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(prior)


class _Pending:
    """Holds the app's `start_response` call until the body is settled."""

    def __init__(self, owner: SettleBody, environ: dict[str, Any], start_response: StartResponse):
        self.owner = owner
        self.environ = environ
        self.real = start_response
        self.call: tuple[Any, ...] | None = None
        self.write: Callable[[bytes], Any] | None = None
        self.settled = False

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        if self.settled:
            return self.real(status, headers, exc_info)
        self.call = (status, headers, exc_info)
        return self._write

    def _write(self, data: bytes) -> Any:
        """The legacy `write` callable: settles first, then writes through the server."""
        self.settle()
        assert self.write is not None
        return self.write(data)

    def settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        keep = False
        try:
            keep = self.owner.keeps_connection(self.environ)
        finally:
            if not keep:
                self.close_connection()
            else:
                self.environ[CONNECTION_KEY] = "keep-alive"
        if self.call is not None:
            self.write = self.real(*self.call)

    def close_connection(self) -> None:
        """Tell the server to close after this response (and say so in its headers)."""
        self.environ[CONNECTION_KEY] = "close"
        force_close = force_close_of(self.real)
        if force_close is not None:
            force_close()


def force_close_of(start_response: StartResponse) -> Callable[[], None] | None:
    """The server's "close after this response" switch, if it has one (gunicorn does).

    gunicorn's `start_response` is its response object's bound method, and that object has
    `force_close()`. Middleware that wraps `start_response` sets `__wrapped__` on its wrapper,
    as `functools.wraps` does, so the switch is found through any number of layers.
    """
    seen = 0
    while start_response is not None and seen < 10:
        force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
        if callable(force_close):
            return force_close
        start_response = getattr(start_response, "__wrapped__", None)
        seen += 1
    return None


def _client_closes(environ: dict[str, Any]) -> bool:
    """The client asked for the connection to end after this request (or spoke HTTP/1.0)."""
    tokens = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",")}
    if "close" in tokens:
        return True
    return environ.get("SERVER_PROTOCOL") == "HTTP/1.0" and "keep-alive" not in tokens


def _has_body(environ: dict[str, Any]) -> bool:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    length = environ.get("CONTENT_LENGTH", "").strip()
    return bool(length) and length != "0"


def _known_remaining(stream: Any) -> int | None:
    """Unread bytes of a gunicorn Content-Length body (its own books), else None (unknown)."""
    reader = getattr(stream, "reader", None)
    length = getattr(reader, "length", None)
    buffered = getattr(stream, "buf", None)
    if not isinstance(length, int) or buffered is None or not hasattr(buffered, "getvalue"):
        return None
    return length + len(buffered.getvalue())


def _timeout_of(sock: socket.socket | None) -> float | None:
    if sock is None:
        return None
    try:
        return sock.gettimeout()
    except OSError:
        return None
