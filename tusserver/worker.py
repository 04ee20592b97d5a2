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
  peer is the proxy) the app counts requests per `X-Forwarded-For` address instead.
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
from gevent.socket import wait_read, wait_write
from gunicorn import http, util
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker

from . import client_limits
from .offload import blocking
from .settings import Settings

TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
    b"Tus-Resumable: 1.0.0\r\nConnection: close\r\nContent-Length: 58\r\n\r\n"
    b"TOO_MANY_CONNECTIONS: too many connections from this client"
)
SENDFILE_STEP = 8 * 1024 * 1024


class TusGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with the header timeout, keep-alive and per-client cap."""

    settings: Settings

    def init_process(self) -> None:
        self.settings = Settings.from_env()
        super().init_process()

    def patch(self) -> None:
        super().patch()
        from gevent import socket as gsocket

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
        try:
            self._serve(listener, client, addr, over)
        finally:
            if table is not None:
                table.close(counted)

    def _serve(self, listener: Any, client: Any, addr: Any, over_cap: bool) -> None:
        """gunicorn's AsyncWorker.handle for HTTP/1.1, with our timeouts around each head."""
        req = None
        try:
            parser = http.get_parser(self.cfg, client, addr)
            listener_name = listener.getsockname()
            served = 0
            while self.alive or served == 0:
                if served and not self._next_request_arrives(parser, client):
                    break
                req = None
                with gevent.Timeout(self.settings.header_timeout, False):
                    req = next(parser)
                if req is None:  # the head did not arrive in time (or the client left)
                    break
                served += 1
                if over_cap:
                    self._refuse(client)
                    break
                if not self.handle_request(listener_name, req, client, addr):
                    break
        except http.errors.NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except (OSError, ssl.SSLError) as exc:
            if getattr(exc, "errno", None) not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.debug("Socket error: %s", exc)
        except Exception as exc:
            self.handle_error(req, client, addr, exc)
        finally:
            util.close(client)

    def _next_request_arrives(self, parser: Any, client: Any) -> bool:
        """Drop what is left of the last body, then wait (idle) for the next request to start."""
        if not parser.finish_body(deadline=time.monotonic() + self.settings.header_timeout):
            return False
        if parser.unreader.buf.getbuffer().nbytes:  # pipelined: the next head is here
            return True
        try:
            wait_read(client.fileno(), timeout=self.settings.keepalive_timeout)
        except TimeoutError:
            return False
        except OSError:
            return False
        return True

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
