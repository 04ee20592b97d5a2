"""Request bodies straight from gunicorn's socket: one kernel copy per byte instead of six.

gunicorn's `wsgi.input` (`Body` over a `LengthReader` over a `SocketUnreader`) gathers every
read in two layers of `BytesIO` buffers, copying each byte about five times in Python before the
application sees it; for a large upload that costs more CPU than writing the bytes to disk.
`body_stream(environ)` returns a stream whose `read(size)` is a single
`socket.recv(size, MSG_WAITALL)`: the bytes gunicorn already buffered come first, and gunicorn's
own count of the body bytes left is kept up to date, so after the request it drains exactly what
is still unread (normally nothing) and the keep-alive connection goes on as before.

MSG_WAITALL fills the whole `size` in one call, as gunicorn's reader did with its loop. Without
it a read returns whatever is on the socket and the buffer is shrunk after every call; glibc then
never raises its mmap threshold and every read maps and faults in fresh pages (three times the
CPU with four uploads at once). It still returns early, with what it has, when the client goes
away or `BodyReader.interrupt` shuts the socket's read side down.

Only a Content-Length body under gunicorn takes this path, and only while nothing has read it
yet; anything else (chunked bodies, other WSGI servers, the test client) gets `wsgi.input`.
"""

from __future__ import annotations

import io
import socket
from typing import Any, BinaryIO


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
    """`read(size)` of a Content-Length body as one `recv`, keeping gunicorn's books.

    Each call returns a new `bytes` object: a chunk stays valid after the next read.
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
        unreader.buf = io.BytesIO()
        unreader.buf.write(pending[take:])
        reader.length -= take

    def read(self, size: int | None = -1) -> bytes:
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
        try:
            data = self._sock.recv(size, socket.MSG_WAITALL)
        except BaseException:
            self._body.failed = True  # where the next request starts is unknown now
            raise
        self._reader.length -= len(data)
        return data
