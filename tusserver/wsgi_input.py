"""Request bodies straight from gunicorn's socket: one kernel copy per byte instead of six.

gunicorn's `wsgi.input` (`Body` over a `LengthReader` over a `SocketUnreader`) gathers every
read in two layers of `BytesIO` buffers, copying each byte about five times in Python before the
application sees it; for a large upload that costs more CPU than writing the bytes to disk.
`body_stream(environ)` returns a stream whose `read(size)` fills one buffer of `size` bytes with
`socket.recv_into`: the bytes gunicorn already buffered come first, and gunicorn's own count of
the body bytes left is kept up to date, so after the request it drains exactly what is still
unread (normally nothing) and the keep-alive connection goes on as before.

Buffers are sized to what arrives. A read first waits for bytes holding no buffer at all (a
thousand trickling clients must not hold a megabyte each), woken by the kernel once `SLOW_WAKE`
bytes wait (`SO_RCVLOWAT`) or by a timer every `HOLD_SECONDS`, and takes what is there: a slow
client's bytes reach the disk every two seconds or so, at one wake-up each time. When it finds a lot
waiting at once (`FAST_SENDER`), the sender is fast: it gets one buffer of the full size,
allocated once and filled in place, never shrunk after each `recv` (shrinking keeps glibc from
raising its mmap threshold, and every read then maps and faults in fresh pages: three times the
CPU with four uploads at once), woken per `WAKE_BYTES` rather than per packet. `last_activity`
(for the read timeout) counts bytes waiting in the kernel too. A read returns early, with what
it has, when the client goes away or `BodyReader.interrupt` shuts the socket's read side down.

Only a Content-Length body under gunicorn takes this path, and only while nothing has read it
yet; anything else (chunked bodies, other WSGI servers, the test client) gets `wsgi.input`.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import socket
import struct
import termios
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from .splice import ENDED, Filled, Moved, Pipes, Sink, Unsupported, wait_readable

FAST_SENDER = 64 * 1024
"""A read that finds this many bytes waiting at once is from a fast sender: it gets one buffer of
the full chunk size, filled in place. Slower senders' bytes are gathered in a buffer that grows
with what arrives."""

SLOW_WAKE = 32 * 1024
"""A read waiting for its first bytes is woken once this many wait (or after HOLD_SECONDS)."""

WAKE_BYTES = 256 * 1024
"""A fast read is woken when this much has arrived (or all it still waits for), not per packet."""

HOLD_SECONDS = 2.0
"""The longest one read gathers bytes once the first have arrived: a slow client's bytes go to
disk at least this often instead of waiting in memory for a whole chunk. At 16 KiB/s this is
one wake-up and one 32 KiB write (one hand-off to the thread pool) per two seconds: with
thousands of slow uploads per worker, those wake-ups are most of the worker's CPU."""


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
        self._last_activity = time.monotonic()
        self._lowat = 1
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
            first = self._first_bytes(min(size, FAST_SENDER))
            if len(first) >= FAST_SENDER and len(first) < size:
                return self._fill(first, size, time.monotonic() + HOLD_SECONDS)
            return first
        finally:
            self._set_lowat(1)
            with contextlib.suppress(OSError):
                self._sock.settimeout(timeout)

    def _first_bytes(self, size: int) -> bytes:
        """Wait holding no buffer; then take what has arrived (at most `size` bytes).

        The kernel is asked (`SO_RCVLOWAT`) to wake us when `SLOW_WAKE` bytes are waiting, and
        a timer wakes us every `HOLD_SECONDS` to take fewer: a client trickling 16 KiB/s costs
        one wake-up per `SLOW_WAKE` bytes instead of one per packet, and its bytes reach the
        disk within `HOLD_SECONDS`. b"" at the end of the body (or when the read side was shut
        down).
        """
        self._set_lowat(min(SLOW_WAKE, size))
        while True:
            self._sock.settimeout(HOLD_SECONDS)
            try:
                data = self._sock.recv(size)
            except TimeoutError:
                if self._waiting_bytes():
                    self._set_lowat(1)  # a few bytes in a whole hold time: take them now
                continue
            except BaseException:
                self._body.failed = True  # where the next request starts is unknown now
                raise
            if data:
                self._reader.length -= len(data)
                self._last_activity = time.monotonic()
            return data

    def _waiting_bytes(self) -> int:
        """Bytes the kernel holds for us that no `recv` has taken yet."""
        try:
            raw = fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except (OSError, ValueError):
            return 0
        return int(struct.unpack("i", raw)[0])

    @property
    def last_activity(self) -> float:
        """When bytes last arrived, including bytes waiting that we were not woken for yet."""
        if self._waiting_bytes():
            return time.monotonic()
        return self._last_activity

    def _fill(self, start: bytes | bytearray, size: int, deadline: float) -> bytes | bytearray:
        """A fast sender: fill one buffer of `size` in place (no copy per `recv`).

        While it waits, the socket's `SO_RCVLOWAT` asks the kernel to report it readable only
        once `WAKE_BYTES` (or the rest of this read, if less) have arrived: under the gevent
        worker every wake-up is a trip through the event loop, and waking for each packet of a
        fast upload cost more CPU than the copying.
        """
        buffer = bytearray(size)
        filled = len(start)
        buffer[:filled] = start
        lowat = self._lowat
        with memoryview(buffer) as view:
            try:
                while filled < size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wanted = min(size - filled, WAKE_BYTES)
                    if wanted != lowat:
                        lowat = self._set_lowat(wanted)
                    self._sock.settimeout(remaining)
                    count = self._sock.recv_into(view[filled:], size - filled)
                    if not count:
                        break  # the client went away, or the read side was shut down
                    filled += count
                    self._reader.length -= count
                    self._last_activity = time.monotonic()
            except TimeoutError:
                pass  # the hold time is up: hand over what arrived
            except BaseException:
                self._body.failed = True  # where the next request starts is unknown now
                if filled:
                    return bytes(view[:filled])  # keep what arrived; the next read fails
                raise
            return buffer if filled == size else bytes(view[:filled])

    def fill_pipe(self, pipes: Pipes, size: int) -> Filled | bytes | None:
        """Move up to `size` body bytes from the socket into one of `pipes`, not through Python.

        Like `read`, it first waits holding nothing until `SLOW_WAKE` bytes (or a hold time's
        worth) arrived. A slow sender's bytes are returned as bytes (a pipe's worth of kernel
        memory per trickling client would cost more than the copy); bytes gunicorn already
        buffered are left for `read` (None). A fast sender's are gathered in the pipe until
        `size` bytes or `HOLD_SECONDS`, woken per `WAKE_BYTES`, and the pipe is returned with
        the count (`ENDED`: the client went away or the read side was shut down). Raises
        `splice.Unsupported` when splice cannot be used and nothing was taken from the socket.
        A socket failure ends the body like a short read, keeping what arrived.
        """
        if getattr(self._body, "failed", False):
            return ENDED
        if self._pending:
            return None
        size = min(size, self._reader.length)
        if size <= 0:
            return ENDED
        sock_fd = self._sock.fileno()
        try:
            blocking = os.get_blocking(sock_fd)
        except OSError:  # the socket is closed: the body ends here
            self._body.failed = True
            return ENDED
        if not blocking:  # gevent's sockets, or any with a timeout
            return self._fill_pipe(pipes, sock_fd, size)
        # splice(2) on a blocking TCP socket would wait for every byte asked for, past the hold
        # time (gthread's sockets): a timeout makes Python set the descriptor non-blocking.
        timeout = self._sock.gettimeout()
        self._sock.settimeout(HOLD_SECONDS)
        try:
            return self._fill_pipe(pipes, sock_fd, size)
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(timeout)

    def _fill_pipe(self, pipes: Pipes, sock_fd: int, size: int) -> Filled | bytes:
        """`fill_pipe` on a non-blocking socket; the socket's `SO_RCVLOWAT` is back at 1 after
        it, on every way out: the setting outlives the request, and a keep-alive connection
        left waiting for 32 KiB would never wake for a small next request."""
        try:
            return self._fill_pipe_waiting(pipes, sock_fd, size)
        finally:
            self._set_lowat(1)

    def _fill_pipe_waiting(self, pipes: Pipes, sock_fd: int, size: int) -> Filled | bytes:
        if not self._wait_for_first_bytes(sock_fd, size):
            return ENDED
        waiting = self._waiting_bytes()
        if waiting < FAST_SENDER and waiting < size:
            return self._take_waiting(size)
        pipe = pipes.next()
        size = min(size, pipe.size)
        deadline = time.monotonic() + HOLD_SECONDS
        held = 0
        try:
            while held < size:
                moved = pipe.fill_from(sock_fd, size - held)
                if moved == 0:
                    break  # the client went away, or the read side was shut down
                if moved is not None:
                    held += moved
                    self._reader.length -= moved
                    self._last_activity = time.monotonic()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._set_lowat(min(size - held, WAKE_BYTES))
                if not wait_readable(sock_fd, remaining):
                    break  # the hold time is up: hand over what arrived
        except Unsupported:
            if held:
                self._body.failed = True  # pragma: no cover - splice worked a moment ago
                return Filled(pipe, held)
            raise
        except OSError:
            self._body.failed = True  # the client's end: keep what arrived, the body ends
        finally:
            self._set_lowat(1)
        return Filled(pipe, held)

    def move(
        self, pipes: Pipes, size: int, sink: Sink, start: int, stop: Callable[[], bool]
    ) -> Filled | Moved | bytes | None:
        """Move up to `size` body bytes from the socket into the file, in one pool-thread trip.

        When a fast sender's bytes already wait, the pool thread starts on them at once
        (`_started_fast`). Otherwise the first pipe's worth is gathered here, on the event loop,
        exactly as `fill_pipe` does
        (a slow sender's bytes come back as bytes, None leaves gunicorn's buffered bytes to
        `read`, `ENDED` is the end). Then one pool thread drains that pipe into `sink` and
        goes on moving socket -> pipe -> file for as long as the socket has bytes waiting, up
        to `size`, `HOLD_SECONDS`, or until `stop()`; after the body's last byte it also runs
        `sink.finish()` (the fdatasync), which is then one hand-off less. Handing each
        megabyte to the pool and waiting for the loop to wake up again cost more than the
        copy itself: a fast 5 MiB PATCH spent two thirds of its body time in hand-offs. A
        thread never waits on the socket: when it runs dry, the body goes back to the loop.
        """
        started = self._started_fast(pipes, size)
        if started is not None:
            return sink.run(self._carry, started, self._sock.fileno(), size, sink, start, stop)
        filled = self.fill_pipe(pipes, size)
        if not isinstance(filled, Filled) or filled.pipe is None:
            return filled
        sock_fd = self._sock.fileno()
        try:
            blocking_socket = os.get_blocking(sock_fd)
        except OSError:
            blocking_socket = False
        if blocking_socket:  # gthread: see `fill_pipe`
            timeout = self._sock.gettimeout()
            self._sock.settimeout(HOLD_SECONDS)
        try:
            return sink.run(self._carry, filled, sock_fd, size, sink, start, stop)
        finally:
            if blocking_socket:
                with contextlib.suppress(OSError):
                    self._sock.settimeout(timeout)

    def _started_fast(self, pipes: Pipes, size: int) -> Filled | None:
        """An empty pipe to start moving with at once, when a fast sender's bytes are waiting.

        The usual start (wait until readable, fill the first pipe on the event loop, then hand
        over) costs a trip through the loop and half a dozen system calls; when the kernel
        already holds `FAST_SENDER` bytes (or the rest of the body) on a non-blocking socket,
        the pool thread can start on them straight away. None: go the usual way.
        """
        if getattr(self._body, "failed", False) or self._pending:
            return None
        size = min(size, self._reader.length)
        if size <= 0:
            return None
        try:
            if os.get_blocking(self._sock.fileno()):
                return None  # gthread's sockets: `fill_pipe` makes them non-blocking first
        except OSError:
            return None
        if self._waiting_bytes() < min(FAST_SENDER, size):
            return None
        return Filled(pipes.next(), 0)

    def _carry(
        self,
        filled: Filled,
        sock_fd: int,
        size: int,
        sink: Sink,
        start: int,
        stop: Callable[[], bool],
    ) -> Moved:
        """On a pool thread, while the greenlet that owns this input waits for it."""
        pipe = filled.pipe
        assert pipe is not None
        if filled.count:
            sink.drain(pipe, start, filled.count)
        moved = filled.count
        deadline = time.monotonic() + HOLD_SECONDS
        while moved < size and not stop() and time.monotonic() < deadline:
            try:
                got = pipe.fill_from(sock_fd, min(size - moved, pipe.size))
            except (OSError, Unsupported):
                self._body.failed = True  # the client's end: keep what arrived, the body ends
                break
            if not got:
                break  # nothing waiting (back to the loop), or the end of the stream
            self._reader.length -= got
            self._last_activity = time.monotonic()
            sink.drain(pipe, start + moved, got)
            moved += got
        if self._reader.length > 0 or getattr(self._body, "failed", False):
            return Moved(moved)
        sink.finish()
        return Moved(moved, finished=True)

    def _take_waiting(self, size: int) -> bytes:
        """The bytes a slow sender has waiting (the wait is over: this does not block)."""
        try:
            data = self._sock.recv(size)
        except OSError:
            self._body.failed = True  # where the next request starts is unknown now
            return b""
        self._reader.length -= len(data)
        if data:
            self._last_activity = time.monotonic()
        return data

    def _wait_for_first_bytes(self, sock_fd: int, size: int) -> bool:
        """Wait, holding no buffer, until bytes (or the end) arrive; False if the socket failed."""
        self._set_lowat(min(SLOW_WAKE, size))
        try:
            while not wait_readable(sock_fd, HOLD_SECONDS):
                if self._waiting_bytes():
                    self._set_lowat(1)  # a few bytes in a whole hold time: take them now
        except OSError:
            self._body.failed = True
            return False
        return True

    def _set_lowat(self, count: int) -> int:
        if count != self._lowat:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)
            self._lowat = count
        return count
