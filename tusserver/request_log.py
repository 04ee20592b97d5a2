"""One log line (and one set of metrics) per request, written when the response has *finished*.

A line written when the view returns says `200 out=1048576` for a download that has not been
sent yet; if S3 then fails or the client goes away, the client saw a failure and the log did
not. `RequestLog` is WSGI middleware that follows the response body to its end instead:

- a body iterable is wrapped, and a chunk counts as sent once the server comes back for the next
  one (so its write succeeded); the line is written when the iterable is exhausted or closed;
- a file handed to the server as `wsgi.file_wrapper` (gunicorn sends it with `sendfile`) keeps
  its zero-copy path: its file object is wrapped to see how far the server got in the file;
- a response without a body (HEAD, 204, 304, `Content-Length: 0`) or with a small body held in
  memory (an error, a JSON document: one write) is logged at once.

A response whose body ended before its `Content-Length` is marked `cut-short=backend` (the data
store failed mid-stream) or `cut-short=client` (the client went away, or the write to it
failed). When the data store fails mid-stream, the error is logged in that one line, without a
traceback, and the server is told to close the connection, so the client sees a short body and
an end of connection, never a hang; a download that fails before its first byte is an ordinary
503 answered by the view.

The line:

    GET /files/<id> 200 upload=<id> in=0 out=1048576 12.3ms id=<request id>
        [conn=close] [cut-short=backend|client of=<Content-Length> [error=<code>]]

`in` is the upload bytes read from the request body, `out` the response body bytes actually
handed to the connection, `conn=close` says the server closes the connection after this response
(see `keepalive.py`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import metrics
from .errors import TusError
from .keepalive import CONNECTION_KEY, force_close_of
from .logsafe import escape

log = logging.getLogger("tusserver.request")

FACTS_KEY = "tusserver.request_facts"
"""Environ key under which the app leaves what it knows about the request (`RequestFacts`)."""

NO_BODY_STATUSES = frozenset({204, 304})


@dataclass
class RequestFacts:
    """What only the application knows, handed to the log through the WSGI environ."""

    upload_id: str = "-"
    received: int = 0
    request_id: str = "-"
    download: bool = False
    """The body is an upload's bytes (counted as bytes served), not an error or API document."""
    streamed: bool = True
    """The body is produced while it is sent (a download), not a document held in memory."""


class RequestLog:
    """WSGI middleware: log and count each request once its response has finished."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        exchange = _Exchange(environ)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            exchange.started(status, headers)
            return start_response(status, headers, exc_info)

        start.__wrapped__ = start_response  # type: ignore[attr-defined]
        try:
            result = self.app(environ, start)
        except BaseException:
            exchange.status = exchange.status or 500
            exchange.finish(completed=False)
            raise
        facts = environ.get(FACTS_KEY)
        if exchange.without_body() or (facts is not None and not facts.streamed):
            # Nothing to follow: no body, or a small document already in memory (an error, a
            # JSON answer), which goes out in one write.
            exchange.sent = exchange.expected or 0
            exchange.finish(completed=True)
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if (
            isinstance(file_wrapper, type)
            and isinstance(result, file_wrapper)
            and hasattr(result, "filelike")
        ):
            return _follow_file(result, exchange)
        return _Counted(result, exchange, force_close_of(start_response))


class _Exchange:
    """One request and its response, from the first byte to the log line."""

    def __init__(self, environ: dict[str, Any]):
        self.environ = environ
        self.started_at = time.monotonic()
        self.status = 0
        self.expected: int | None = None
        self.sent = 0
        self.failure: BaseException | None = None
        self.done = False
        self.endless = False
        """An event stream: it has no end of its own, so a client leaving is how it ends."""

    def started(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = int(status.split(" ", 1)[0])
        for name, value in headers:
            if name.lower() == "content-length":
                with contextlib.suppress(ValueError):
                    self.expected = int(value)
            elif name.lower() == "content-type":
                self.endless = value.lower().startswith("text/event-stream")

    def without_body(self) -> bool:
        if not self.status:
            return False  # start_response comes later, with the first chunk
        return (
            self.environ.get("REQUEST_METHOD") == "HEAD"
            or self.status in NO_BODY_STATUSES
            or self.status < 200
            or self.expected == 0
        )

    def finish(self, completed: bool) -> None:
        """Write the line and count the request (once)."""
        if self.done:
            return
        self.done = True
        if self.expected is not None and not self.without_body():
            self.sent = min(self.sent, self.expected)
        cut = self._cut_short(completed)
        facts: RequestFacts = self.environ.get(FACTS_KEY) or RequestFacts()
        duration = time.monotonic() - self.started_at
        method = self.environ.get("REQUEST_METHOD", "-")
        served = self.sent if facts.download else 0
        metrics.record_request(method, self.status or 500, duration, facts.received, served)
        if cut is not None:
            metrics.RESPONSES_CUT_SHORT.labels(cut).inc()
        line = "%s %s %s upload=%s in=%d out=%d %.1fms id=%s"
        args: list[Any] = [
            _clean(method),
            _clean(self.environ.get("PATH_INFO", "")),
            self.status or 500,
            _clean(facts.upload_id),
            facts.received,
            self.sent,
            duration * 1000,
            _clean(facts.request_id),
        ]
        if self.environ.get(CONNECTION_KEY) == "close":
            line += " conn=close"
        level = logging.INFO
        if cut is not None:
            level = logging.WARNING
            line += " cut-short=%s of=%s"
            args += [cut, self.expected if self.expected is not None else "?"]
            if self.failure is not None:
                line += " error=%s"
                args.append(_describe(self.failure))
        log.log(level, line, *args)

    def _cut_short(self, completed: bool) -> str | None:
        """Why the body did not reach the client in full, or None if it did."""
        if self.without_body():
            return None
        if self.failure is not None:
            return "backend"
        if not completed:
            return None if self.endless else "client"
        if self.expected is not None and self.sent < self.expected:
            return "backend"  # the body ended early without an error
        return None


class _Counted:
    """The response body as the server sees it, counting what it took and how it ended."""

    def __init__(
        self,
        inner: Iterable[bytes],
        exchange: _Exchange,
        force_close: Callable[[], None] | None,
    ):
        self._inner = inner
        self._iterator: Iterator[bytes] | None = None
        self._exchange = exchange
        self._force_close = force_close
        self._pending = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> bytes:
        exchange = self._exchange
        # The server asks for more only after the previous chunk was written.
        exchange.sent += self._pending
        self._pending = 0
        if exchange.done:
            raise StopIteration
        try:
            if self._iterator is None:
                self._iterator = iter(self._inner)
            chunk = next(self._iterator)
        except StopIteration:
            exchange.finish(completed=True)
            raise
        except Exception as exc:
            exchange.failure = exc
            if not isinstance(exc, TusError):
                log.exception("response body failed after %d bytes", exchange.sent)
            exchange.finish(completed=False)
            if self._force_close is None:
                raise
            # The headers (and part of the body) are out: the only honest end is to close.
            self._force_close()
            raise StopIteration from None
        self._pending = len(chunk)
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._exchange.finish(completed=False)


class _FilePosition:
    """A file object that remembers how far the server got in it (sendfile or reads)."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.start = inner.tell()
        self.reached = self.start

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._inner.seek(offset, whence)
        # socket.sendfile seeks to just past the bytes it sent, also when it fails midway.
        self.reached = max(self.reached, position)
        return position

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.reached = max(self.reached, self._inner.tell())
        return data

    @property
    def advanced(self) -> int:
        return self.reached - self.start


def _follow_file(wrapper: Any, exchange: _Exchange) -> Any:
    """Keep the server's own file wrapper (and its sendfile), but see how far it got."""
    position = _FilePosition(wrapper.filelike)
    wrapper.filelike = position
    original_close = getattr(wrapper, "close", None)

    def close() -> None:
        try:
            if original_close is not None:
                original_close()
        finally:
            exchange.sent = position.advanced
            full = exchange.expected is None or exchange.sent >= exchange.expected
            exchange.finish(completed=full)

    wrapper.close = close
    return wrapper


def _describe(error: BaseException) -> str:
    if isinstance(error, TusError):
        return error.code
    return type(error).__name__


def _clean(value: str) -> str:
    """A client-chosen value made safe for one log line: escaped, and no spaces, so it stays one
    field of the line."""
    return escape(value, limit=300).replace(" ", "\\x20")
