"""Zero-copy receive: request-body bytes from a socket into a file through a pipe (`os.splice`).

Reading a body into Python and writing it out copies every byte twice (socket to a buffer, the
buffer to the page cache) and costs a buffer per read. `splice(2)` moves the socket's received
pages into a pipe by reference and from the pipe into the file's page cache: one copy, done by
the kernel, no buffer in the process, and a few system calls per megabyte. It needs Linux and
Python >= 3.10 (`os.splice`); where either is missing, or a file system or socket refuses
(`EINVAL`, `ENOSYS`, ...), the caller falls back to the copy path (`Unsupported`).

`Pipe` is one pipe used as that conduit, made as large as the system allows so that one call
carries up to a megabyte. `wait_readable` waits for a socket the way the running worker waits:
on gevent's hub under the gevent worker (a greenlet gives way to the others), with `poll`
elsewhere (a thread of its own).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .offload import event_loop_active

AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
"""This platform has `os.splice` (Linux, Python >= 3.10)."""

PIPE_SIZE = 1024 * 1024
"""What each pipe asks for (Linux's default `pipe-max-size` for unprivileged processes)."""

_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 2)
_MOVE = getattr(os, "SPLICE_F_MOVE", 1)

UNSUPPORTED_ERRNOS = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF})
"""What splice answers for a file or socket it cannot move bytes between: use the copy path."""


class Unsupported(Exception):
    """splice cannot be used here; nothing was moved by the call that raised it."""


class Filled(NamedTuple):
    """A pipe holding the next `count` bytes of a body, to be drained into the file."""

    pipe: Pipe | None
    count: int


ENDED = Filled(None, 0)
"""No more bytes: the client went away, or the read side was shut down."""


class Moved(NamedTuple):
    """The next `count` bytes of a body, already in the file (socket -> pipe -> file).

    `finished`: they were the body's last, and the sink's `finish` ran after them.
    """

    count: int
    finished: bool = False


class Sink(Protocol):
    """Where `DirectInput.move` puts a body: `run` runs the moving, which calls the rest."""

    def run(self, fn: Callable[..., Moved], *args: Any) -> Moved:
        """`fn(*args)` on a pool thread, waited for; whatever the sink writes to is closed
        only after it returns, even if the waiting greenlet is killed meanwhile."""

    def drain(self, pipe: Pipe, start: int, count: int) -> None:
        """Write the pipe's `count` bytes where byte `start` of the body goes."""

    def finish(self) -> None:
        """The body's last byte is written: end the write (fdatasync, close) on this trip."""


class Pipes:
    """Two pipes used by turns (made on first use), so one is filled while the other drains.

    Whoever drains a `Filled` pipe must have finished before the pipe's next turn, i.e. before
    the next-but-one piece is asked for (`offload.WriteBehind` keeps one write in flight).
    """

    def __init__(self) -> None:
        self._pipes: list[Pipe | None] = [None, None]
        self._turn = 0

    def next(self) -> Pipe:
        self._turn ^= 1
        pipe = self._pipes[self._turn]
        if pipe is None:
            pipe = self._pipes[self._turn] = Pipe()
        return pipe

    def close(self) -> None:
        for pipe in self._pipes:
            if pipe is not None:
                pipe.close()
        self._pipes = [None, None]


class Pipe:
    """A pipe for moving bytes socket -> pipe -> file; close it when done (or use `with`)."""

    def __init__(self) -> None:
        if not AVAILABLE:
            raise Unsupported("no os.splice on this platform")
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        self.size = 64 * 1024
        with contextlib.suppress(OSError):  # over a user's pipe budget: keep the default size
            self.size = fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fill_from(self, sock_fd: int, count: int) -> int | None:
        """Move up to `count` bytes waiting on the (non-blocking) socket into the pipe.

        Returns the bytes moved, 0 at end of stream, None when none are waiting now. Raises
        `Unsupported` when the socket cannot be spliced; other `OSError`s are the socket's.
        """
        try:
            return os.splice(sock_fd, self.write_fd, count, flags=_MOVE | _NONBLOCK)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in UNSUPPORTED_ERRNOS:
                raise Unsupported(str(exc)) from exc
            raise

    def drain_to(self, fd: int, position: int, count: int) -> None:
        """Write the `count` bytes in the pipe to file `fd` at `position` (all of them).

        Raises `Unsupported` if the file refuses splice before a byte was written (the bytes
        stay in the pipe for `drain_copying`); other `OSError`s are the file's.
        """
        first = True
        while count > 0:
            try:
                moved = os.splice(self.read_fd, fd, count, offset_dst=position, flags=_MOVE)
            except OSError as exc:
                if first and exc.errno in UNSUPPORTED_ERRNOS:
                    raise Unsupported(str(exc)) from exc
                raise
            if moved <= 0:  # pragma: no cover - a pipe holding bytes always gives some
                raise OSError(errno.EIO, "splice moved nothing from a full pipe")
            first = False
            position += moved
            count -= moved

    def drain_copying(self, fd: int, position: int, count: int) -> None:
        """Write the pipe's `count` bytes with read/pwrite (a file that refused splice)."""
        while count > 0:
            block = os.read(self.read_fd, min(count, self.size))
            if not block:  # pragma: no cover - the pipe holds `count` bytes
                raise OSError(errno.EIO, "the pipe ended early")
            view = memoryview(block)
            while view:
                written = os.pwrite(fd, view, position)
                view = view[written:]
                position += written
            count -= len(block)


def wait_readable(fd: int, timeout: float) -> bool:
    """Wait until `fd` is readable (data, end of stream or an error): False on timeout."""
    if event_loop_active():
        from gevent.socket import wait_read

        try:
            wait_read(fd, timeout=timeout, timeout_exc=TimeoutError())
        except TimeoutError:
            return False
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(max(0.0, timeout) * 1000))
