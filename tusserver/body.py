"""Streaming request bodies: bounded chunks, counted bytes, and a clean end on disconnect.

The reader never holds a body in memory: it yields chunks of at most `chunk_size` bytes. A client
that goes away mid-body (short read, reset, timeout, malformed chunked encoding) ends the stream
cleanly with `disconnected` set, so the service can commit the bytes that did arrive.

`interrupt()` ends a body early from another thread (the lock keeper): it sets a flag checked
between chunks and shuts down the read side of the client socket, which makes a read that is
blocked on a silent client return end-of-file at once. The reader ends a body itself the same
way when it arrives slower than its `MinimumRate` (`TUSSERVER_MIN_RATE`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

from . import splice
from .rate import MinimumRate

log = logging.getLogger(__name__)

MOVE_MAX = 64 * 1024 * 1024
"""The most bytes one `Moved` piece carries: the minimum rate and the interrupt flag are looked
at between pieces too, and no buffer grows with it (the bytes pass through one pipe)."""


class BodyReader:
    """Iterate over a request body in bounded chunks.

    `expected` is the Content-Length (None for a chunked body). `limit` is the most bytes the
    upload can still take (None: no limit). A chunked body that goes past `limit` sets `overflow`
    and nothing past the limit is ever yielded; a Content-Length beyond the limit is refused by
    the service before reading.
    """

    def __init__(
        self,
        stream: BinaryIO,
        expected: int | None,
        chunk_size: int = 1024 * 1024,
        sock: socket.socket | None = None,
        min_rate: MinimumRate | None = None,
    ):
        self.stream = stream
        self.expected = expected
        self.chunk_size = chunk_size
        self.sock = sock
        self.limit: int | None = None
        self.received = 0
        self.disconnected = False
        self.overflow = False
        self.interrupted: str | None = None
        self.min_rate = min_rate
        self._last_activity = time.monotonic()

    @property
    def idle_seconds(self) -> float:
        """Seconds since the last byte arrived (or since the reader was made).

        A stream that sees bytes arrive inside one `read` (see `wsgi_input.DirectInput`) says
        so through `last_activity`, so a slow client filling a large chunk is not idle.
        """
        last = max(self._last_activity, getattr(self.stream, "last_activity", 0.0))
        return time.monotonic() - last

    @property
    def at_end(self) -> bool:
        """Every byte of a Content-Length body has arrived: no read is left to make."""
        return self.expected is not None and self.received >= self.expected

    @property
    def complete(self) -> bool:
        """The whole body arrived: nothing was cut short by the client or an interrupt."""
        return not self.disconnected and self.interrupted is None

    def interrupt(self, reason: str) -> None:
        """End the body early; safe to call from another thread, more than once."""
        if self.interrupted is not None:
            return
        self.interrupted = reason
        log.info("ending request body early: %s", reason)
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)

    def __iter__(self) -> Iterator[bytes]:
        while (want := self._next_size()) > 0:
            chunk = self._read(want)
            if not chunk:
                self._ended_short()
                return
            self._arrived(len(chunk))
            yield chunk

    def can_splice(self) -> bool:
        """True if `pieces` may move this body without reading it into Python."""
        return splice.AVAILABLE and hasattr(self.stream, "fill_pipe")

    def pieces(
        self, pipes: splice.Pipes, sink: splice.Sink | None = None
    ) -> Iterator[bytes | splice.Filled | splice.Moved]:
        """The body as pieces: chunks (bytes), pipes filled straight from the socket, or
        bytes already moved into the file.

        A `Filled` pipe holds the next `count` bytes of the body, moved from the socket by
        splice (see `tusserver.splice`): the caller drains it into the file at the running
        position before the next-but-one piece (the pipes alternate). With a `sink` a fast
        sender's bytes are moved into it instead (`DirectInput.move`), up to `MOVE_MAX` per
        piece, and the piece is `Moved`: already written. Chunks are a slow
        sender's bytes, or all of them once splice turned out not to work here. Limits, the
        minimum rate and interrupts apply as to iterating.
        """
        stream = self.stream if splice.AVAILABLE else None
        fill_pipe = getattr(stream, "fill_pipe", None)
        move = getattr(stream, "move", None) if sink is not None else None
        while (want := self._next_size()) > 0:
            piece: bytes | splice.Filled | splice.Moved | None = None
            try:
                if move is not None:
                    piece = move(pipes, self._next_size(MOVE_MAX), sink, self.received, self._stop)
                elif fill_pipe is not None:
                    piece = fill_pipe(pipes, want)
            except splice.Unsupported as exc:
                log.info("splice unavailable, copying the body instead: %s", exc)
                fill_pipe = move = None
            if piece is None:
                piece = self._read(want)
            count = len(piece) if isinstance(piece, bytes | bytearray) else piece.count
            if not count:
                self._ended_short()
                return
            self._arrived(count)
            yield piece

    def _stop(self) -> bool:
        """True once the body must end early (any thread may ask)."""
        return self.interrupted is not None

    def _next_size(self, most: int | None = None) -> int:
        """How many bytes the next read may take, `most` or a chunk (0: the body is over)."""
        if self.interrupted is not None or self.disconnected:
            return 0
        want = most or self.chunk_size
        if self.expected is not None:
            want = min(want, self.expected - self.received)
            if want <= 0:
                return 0
        if self.limit is not None:
            room = self.limit - self.received
            if room <= 0:
                if self.expected is None:
                    self._check_overflow()
                return 0
            want = min(want, room)
        return want

    def _ended_short(self) -> None:
        if self.expected is not None and self.received < self.expected:
            self.disconnected = True

    def _arrived(self, count: int) -> None:
        self.received += count
        self._last_activity = time.monotonic()
        if self.min_rate is not None and self.min_rate.too_slow(self.received):
            # The bytes that did arrive are kept (yielded next); the body ends after them.
            self.interrupt(
                f"slower than {self.min_rate.rate:g} bytes/s over {self.min_rate.window:g}s"
            )

    def _read(self, size: int) -> bytes:
        try:
            return self.stream.read(size)
        except Exception as exc:  # any failure reading from the client is the client's end
            log.info("client body ended with %s: %s", type(exc).__name__, exc)
            self.disconnected = True
            return b""

    def _check_overflow(self) -> None:
        """A chunked body at its limit: is there more? (One more byte is read, never stored.)"""
        if self._read(1):
            self.overflow = True
            self.disconnected = False
