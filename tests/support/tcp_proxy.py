"""A TCP proxy on 127.0.0.1 that a test can cut, to stage a backend outage at a chosen moment.

Put it between the server and a backend (S3, Redis): point the server at `proxy.address`.
`cut()` breaks every open connection at once (both sides see the connection end) and turns away
new ones until `restore()`; the backend itself keeps running, with all its data. That makes an
outage exact and repeatable: "S3 goes away after the first MiB of this download", "Redis is
unreachable for 10 seconds".

    with TcpProxy("127.0.0.1", 9000) as proxy:
        start_server(env={"TUSSERVER_S3_ENDPOINT": proxy.address})
        ...
        proxy.cut()
        ...
        proxy.restore()
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

BLOCK = 64 * 1024


class TcpProxy:
    """Forwards connections from a free port of 127.0.0.1 to `host:port`."""

    def __init__(self, host: str, port: int = 0, *, unix_path: str | None = None):
        self.target = (host, port)
        self.unix_path = unix_path
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stopping = False
        self._sockets: set[socket.socket] = set()
        self._mutex = threading.Lock()
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    @classmethod
    def to_unix(cls, path: str) -> TcpProxy:
        """A TCP proxy to a Unix socket (the embedded Valkey listens on one)."""
        return cls("", unix_path=path)

    def _connect_backend(self) -> socket.socket:
        if self.unix_path is None:
            return socket.create_connection(self.target, timeout=5)
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        backend.settimeout(5)
        backend.connect(self.unix_path)
        return backend

    @classmethod
    def to(cls, address: str) -> TcpProxy:
        """A proxy to "host:port"."""
        host, _, port = address.rpartition(":")
        return cls(host, int(port))

    @property
    def address(self) -> str:
        """ "127.0.0.1:port", to give the server instead of the backend's address."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def cut(self) -> None:
        """Break every connection now (reset) and turn new ones away until `restore()`."""
        self._open.clear()
        with self._mutex:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        """Forward new connections again."""
        self._open.set()

    def stop(self) -> None:
        self._stopping = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                backend = self._connect_backend()
            except OSError:
                _reset(client)
                continue
            backend.settimeout(None)
            client.settimeout(None)
            self.accepted += 1
            with self._mutex:
                self._sockets.update((client, backend))
            pumps_left = [2]
            for source, sink in ((client, backend), (backend, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, pumps_left), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pumps_left: list[int]) -> None:
        try:
            while True:
                data = source.recv(BLOCK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)  # pass the end of stream on
                    break
                sink.sendall(data)
        except OSError:
            _reset(source)
            _reset(sink)
        with self._mutex:
            pumps_left[0] -= 1
            if pumps_left[0]:
                return  # the other direction is still going
            self._sockets.discard(source)
            self._sockets.discard(sink)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), waking any thread blocked on the socket first."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
