"""Request bodies straight from gunicorn's socket: one kernel copy per byte instead of six.

gunicorn's `wsgi.input` (`Body` over a `LengthReader` over a `SocketUnreader`) gathers every
read in two layers of `BytesIO` buffers, copying each byte about five times in Python before the
application sees it; for a large upload that costs more CPU than writing the bytes to disk.
`body_stream(environ)` returns a stream whose `read(size)` fills one buffer of `size` bytes with
`socket.recv_into`: the bytes gunicorn already buffered come first, and gunicorn's own count of
the body bytes left is kept up to date, so after the request it drains exactly what is still
unread (normally nothing) and the keep-alive connection goes on as before.

Buffers are sized to what arrives. A read first waits for bytes holding no buffer at all (a
thousand trickling clients must not hold a megabyte each). When it finds a lot waiting at once
(`FAST_SENDER`), the sender is fast: it gets one buffer of the full size, allocated once and
filled in place, never shrunk after each `recv` (shrinking keeps glibc from raising its mmap
threshold, and every read then maps and faults in fresh pages: three times the CPU with four
uploads at once). Otherwise the bytes are gathered in a buffer that grows with what arrives. A
read hands over what it has after `HOLD_SECONDS` at most, so a slow client's bytes reach the disk
every second or so instead of sitting in memory. Every `recv` that brings bytes stamps
`last_activity` for the read timeout. A read returns early, with what it has, when the client
goes away or `BodyReader.interrupt` shuts the socket's read side down.

Only a Content-Length body under gunicorn takes this path, and only while nothing has read it
yet; anything else (chunked bodies, other WSGI servers, the test client) gets `wsgi.input`.
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from typing import Any, BinaryIO

FAST_SENDER = 64 * 1024
"""A read that finds this many bytes waiting at once is from a fast sender: it gets one buffer of
the full chunk size, filled in place. Slower senders' bytes are gathered in a buffer that grows
with what arrives."""

HOLD_SECONDS = 1.0
"""The longest one read gathers bytes once the first have arrived: a slow client's bytes go to
disk at least this often instead of waiting in memory for a whole chunk."""


def body_stream(environ: dict[str, Any]) -> BinaryIO | DirectInput:
    """A fast stream over the request body where possible, else `wsgi.input` itself."""
    stream = environ["wsgi.input"]
    try:
        from gunicorn.http.body import Body, LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:  # pragma: no cover - gunicorn is a dependency
        return stream
    if type(stream) is not Body or getattr(stream, "failed", False):
        return stream
    reader = getattr(stream, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if type(reader) is not LengthReader or not isinstance(unreader, SocketUnreader):
        return stream
    buffered = getattr(stream, "buf", None)
    sock = getattr(unreader, "sock", None)
    if not isinstance(buffered, io.BytesIO) or len(buffered.getvalue()) or sock is None:
        return stream  # something read the body already: keep to gunicorn's own path
    if not isinstance(getattr(unreader, "buf", None), io.BytesIO):
        return stream
    if not isinstance(getattr(reader, "length", None), int):
        return stream
    return DirectInput(stream, reader, unreader, sock)


class DirectInput:
    """`read(size)` of a Content-Length body into one buffer, keeping gunicorn's books.

    Each call returns a new bytes-like object: a chunk stays valid after the next read.
    """

    def __init__(self, body: Any, reader: Any, unreader: Any, sock: socket.socket):
        self._body = body
        self._reader = reader
        self._sock = sock
        # Bytes gunicorn read past the request head: this body's first bytes (and possibly
        # the start of a pipelined next request, which stays in gunicorn's buffer).
        pending = unreader.buf.getvalue()
        take = min(len(pending), reader.length)
        self._pending = memoryview(pending)[:take]
        self.last_activity = time.monotonic()
        unreader.buf = io.BytesIO()
        unreader.buf.write(pending[take:])
        reader.length -= take

    def read(self, size: int | None = -1) -> bytes | bytearray:
        if size is None:
            size = -1
        if self._pending:
            if size < 0:
                size = len(self._pending)
            data = bytes(self._pending[:size])
            self._pending = self._pending[len(data) :]
            return data
        left = self._reader.length
        if size < 0 or size > left:
            size = left
        if size <= 0:
            return b""
        timeout = self._sock.gettimeout()
        try:
            # Wait for the first bytes holding no buffer: a client that trickles (or says
            # nothing) costs no memory while it waits.
            first = self._recv(min(size, FAST_SENDER), None)
            if not first or len(first) == size:
                return first
            deadline = time.monotonic() + HOLD_SECONDS
            if len(first) >= FAST_SENDER:
                return self._fill(first, size, deadline)
            gathered = bytearray(first)
            while len(gathered) < size:
                piece = self._recv(min(size - len(gathered), FAST_SENDER), deadline)
                if not piece:
                    break  # no more within the hold time, or the end of the body
                gathered += piece
                if len(gathered) >= FAST_SENDER and len(gathered) < size:
                    return self._fill(gathered, size, deadline)
            return gathered
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(timeout)

    def _recv(self, size: int, deadline: float | None) -> bytes:
        """One `recv` of at most `size` bytes; b"" at the end of the body or at `deadline`."""
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b""
            self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(size)
        except TimeoutError:
            return b""
        except BaseException:
            self._body.failed = True  # where the next request starts is unknown now
            raise
        if data:
            self._reader.length -= len(data)
            self.last_activity = time.monotonic()
        return data

    def _fill(self, start: bytes | bytearray, size: int, deadline: float) -> bytes | bytearray:
        """A fast sender: fill one buffer of `size` in place (no copy per `recv`)."""
        buffer = bytearray(size)
        filled = len(start)
        buffer[:filled] = start
        with memoryview(buffer) as view:
            try:
                while filled < size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._sock.settimeout(remaining)
                    count = self._sock.recv_into(view[filled:], size - filled)
                    if not count:
                        break  # the client went away, or the read side was shut down
                    filled += count
                    self._reader.length -= count
                    self.last_activity = time.monotonic()
            except TimeoutError:
                pass  # the hold time is up: hand over what arrived
            except BaseException:
                self._body.failed = True  # where the next request starts is unknown now
                if filled:
                    return bytes(view[:filled])  # keep what arrived; the next read fails
                raise
            return buffer if filled == size else bytes(view[:filled])
