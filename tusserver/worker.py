"""The gevent worker: thousands of slow connections per process, and the slow-client defence.

gunicorn's gthread worker gives every connection in a request a thread of its own, so a few
hundred clients on bad networks (or a few that are slow on purpose) take every thread and the
server stops answering. Under this worker (gunicorn's gevent worker, which monkey-patches the
standard library) a connection is a greenlet: a client that trickles its body or sits idle
between requests costs a few kilobytes and no thread. Blocking disk calls go to gevent's thread
pool (`tusserver.offload`), and `sendfile` for downloads is made cooperative (gevent's own
`socket.sendfile` falls back to reading the file in Python 8 KiB at a time).

What it adds to gunicorn's `GeventWorker.handle`:
- **Header timeout** (`TUSSERVER_HEADER_TIMEOUT`): a request's line and headers must arrive
  within this many seconds of their first byte (of the connection being accepted, for its first
  request); a client sending headers a byte at a time is disconnected.
- **Idle keep-alive** (`TUSSERVER_KEEPALIVE_TIMEOUT`): how long a connection may sit idle
  between requests. Idle connections are cheap here, so this can be longer than a reverse
  proxy's upstream keep-alive (nginx: 60 s), which avoids the race where the server closes a
  connection the proxy has just sent a request on.
- **Connections per client** (`TUSSERVER_MAX_CONNECTIONS_PER_CLIENT`): a connection over the cap
  gets its request head read and a `429 Too Many Requests` (then it is closed). Counted per
  socket peer across all workers (`client_limits.ConnectionTable`); behind a proxy (where the
  peer is the proxy) the app counts requests per `X-Forwarded-For` address instead. A
  connection carrying an event stream (`GET /api/events`) is not counted while the stream is
  open, and is served even over the cap: a page's streams must not use up a client's uploads
  (the per-process stream cap bounds them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import time
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.socket import wait_read, wait_write
from gunicorn import http, util
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from . import client_limits
from .gc_tuning import tune_for_many_connections
from .offload import blocking
from .settings import Settings

TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
    b"Tus-Resumable: 1.0.0\r\nConnection: close\r\nContent-Length: 58\r\n\r\n"
    b"TOO_MANY_CONNECTIONS: too many connections from this client"
)
SENDFILE_STEP = 8 * 1024 * 1024
THREADPOOL_SIZE = 64
PARK_AFTER = 1.0


class _Connection:
    """One client connection of this worker, and its place in the per-client count."""

    __slots__ = ("addr", "client", "counted", "listener", "watchers")

    def __init__(self, listener: Any, client: Any, addr: Any, counted: int | None):
        self.listener = listener
        self.client = client
        self.addr = addr
        self.counted = counted
        self.watchers: tuple[Any, ...] = ()

    def close(self) -> None:
        util.close(self.client)
        if client_limits.TABLE is not None:
            client_limits.TABLE.close(self.counted)
        self.counted = None


class TusGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with the header timeout, keep-alive and per-client cap."""

    settings: Settings

    def init_process(self) -> None:
        self.settings = Settings.from_env()
        self._parked: set[_Connection] = set()
        super().init_process()

    def load_wsgi(self) -> None:
        # Disk calls (writes, fsync, sendfile) of many uploads at once: gevent's default pool
        # of 10 threads would queue a fresh client's fsync behind a hundred others.
        gevent.get_hub().threadpool.maxsize = THREADPOOL_SIZE
        super().load_wsgi()
        tune_for_many_connections()

    def patch(self) -> None:
        super().patch()
        gsocket.socket.sendfile = cooperative_sendfile

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.setblocking(1)
        table = client_limits.TABLE
        peer = addr[0] if isinstance(addr, tuple) else str(addr)
        counted = None
        over = False
        if (
            table is not None
            and self.settings.max_connections_per_client
            and not self.settings.behind_proxy  # there the app counts per forwarded address
        ):
            counted = table.open(peer)
            over = table.total(peer) > self.settings.max_connections_per_client
        self._serve(_Connection(listener, client, addr, counted), over_cap=over, first=True)

    def _serve(self, conn: _Connection, over_cap: bool = False, first: bool = False) -> None:
        """gunicorn's AsyncWorker.handle for HTTP/1.1, with our timeouts around each head.

        Between requests the connection is parked (see `_park`) and this greenlet ends; a new
        one takes over when the next request starts to arrive.
        """
        req = None
        client = conn.client
        parked = False
        try:
            parser = http.get_parser(self.cfg, client, conn.addr)
            listener_name = conn.listener.getsockname()
            served = 0
            while self.alive or (first and served == 0):
                if served:
                    if not parser.finish_body(
                        deadline=time.monotonic() + self.settings.header_timeout
                    ):
                        break  # the rest of the last body did not come: close
                    if not parser.unreader.buf.getbuffer().nbytes and not self._next_soon(client):
                        self._park(conn)  # idle: give the greenlet back until bytes arrive
                        parked = True
                        return
                req = None
                with gevent.Timeout(self.settings.header_timeout, False):
                    req = next(parser)
                if req is None:  # the head did not arrive in time (or the client left)
                    break
                served += 1
                streaming = client_limits.is_event_stream(req.path)
                if over_cap and not streaming:
                    self._refuse(client)
                    break
                if streaming:
                    self._uncount(conn)
                if not self.handle_request(listener_name, req, client, conn.addr):
                    break
        except http.errors.NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except (OSError, ssl.SSLError) as exc:
            if getattr(exc, "errno", None) not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.debug("Socket error: %s", exc)
        except Exception as exc:
            self.handle_error(req, client, conn.addr, exc)
        finally:
            if not parked:
                conn.close()

    @staticmethod
    def _next_soon(client: Any) -> bool:
        """Whether the next request starts within `PARK_AFTER` seconds (a busy keep-alive
        client, served on without the cost of parking and waking)."""
        try:
            wait_read(client.fileno(), timeout=PARK_AFTER)
        except (TimeoutError, OSError):
            return False
        return True

    def _park(self, conn: _Connection) -> None:
        """Hold an idle keep-alive connection with no greenlet: two event-loop watchers.

        A greenlet waiting for a request that may never come keeps its stack (tens of KiB);
        ten thousand idle connections would cost hundreds of MiB. Parked, a connection costs
        its socket and two watchers. The first byte of the next request starts a new greenlet;
        `TUSSERVER_KEEPALIVE_TIMEOUT` without one closes the connection.
        """
        # gevent's server closes the socket object when the first greenlet returns: keep the
        # connection in a new object over the same file descriptor.
        old = conn.client
        conn.client = gsocket.socket(old.family, old.type, fileno=old.detach())
        loop = gevent.get_hub().loop
        readable = loop.io(conn.client.fileno(), 1)
        expiry = loop.timer(self.settings.keepalive_timeout)

        def unpark() -> None:
            readable.stop()
            expiry.stop()
            self._parked.discard(conn)

        def wake() -> None:
            unpark()
            gevent.spawn(self._serve, conn)

        def expire() -> None:
            unpark()
            conn.close()

        conn.watchers = (readable, expiry)  # kept alive as long as the connection is parked
        self._parked.add(conn)
        readable.start(wake)
        expiry.start(expire)

    @staticmethod
    def _uncount(conn: _Connection) -> None:
        """Stop counting a connection against its client's cap (it carries an event stream)."""
        if client_limits.TABLE is not None:
            client_limits.TABLE.close(conn.counted)
        conn.counted = None

    def _refuse(self, client: Any) -> None:
        """429 for a connection over the per-client cap; then let the client read it."""
        with contextlib.suppress(OSError):
            client.sendall(TOO_MANY)
            client.shutdown(socket.SHUT_WR)
            # Read (and drop) a little of whatever the client still sends, so closing with
            # unread bytes does not reset the connection before the 429 is read.
            with gevent.Timeout(1, False):
                while client.recv(65536):
                    pass

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        """True when the connection stays open for another request.

        (GeventWorker's own override drops AsyncWorker's answer, which the keep-alive loop in
        `_serve` needs.)
        """
        try:
            return bool(AsyncWorker.handle_request(self, listener_name, req, sock, addr))
        except (StopIteration, gevent.GreenletExit, SystemExit):
            return False


def cooperative_sendfile(self: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """`socket.sendfile` that uses `os.sendfile` without stalling the event loop.

    Each step runs on the thread pool (reading a file that is not cached is a blocking disk
    call) and sends what the socket buffer takes; when it is full the greenlet waits for the
    socket to become writable like any other send.
    """
    in_fd = file.fileno()
    out_fd = self.fileno()
    if count is None:
        count = os.fstat(in_fd).st_size - offset
    sent = 0
    try:
        while sent < count:
            try:
                step = blocking(
                    os.sendfile, out_fd, in_fd, offset + sent, min(count - sent, SENDFILE_STEP)
                )
            except BlockingIOError:
                wait_write(out_fd, timeout=self.timeout)
                continue
            if step == 0:
                break  # the file is shorter than promised
            sent += step
    finally:
        with contextlib.suppress(OSError):
            file.seek(offset + sent)
    return sent


__all__ = ["TusGeventWorker", "cooperative_sendfile"]
