"""Small helpers for speaking tus through Flask's test client."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def metadata_header(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(
    client: Any, length: int | None, headers: dict[str, str] | None = None, **meta: str
) -> str:
    """POST an upload; returns its path (e.g. /files/<id>)."""
    sent = dict(TUS)
    if length is None:
        sent["Upload-Defer-Length"] = "1"
    else:
        sent["Upload-Length"] = str(length)
    if meta:
        sent["Upload-Metadata"] = metadata_header(**meta)
    sent.update(headers or {})
    response = client.post("/files/", headers=sent)
    assert response.status_code == 201, response.get_data(as_text=True)
    return path_of(response.headers["Location"])


def path_of(location: str) -> str:
    return "/files/" + location.rstrip("/").rsplit("/", 1)[-1]


def patch(client: Any, path: str, offset: int, data: bytes, **headers: str) -> Any:
    sent = {**TUS, **OCTET, "Upload-Offset": str(offset)}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.patch(path, data=data, headers=sent)


def head(client: Any, path: str) -> Any:
    return client.head(path, headers=TUS)


# --- helpers for the HTTP suite (tests/http) -----------------------------------------------------


def upload_id(path: str) -> str:
    """The id at the end of an upload path or URL."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class Trickle(io.RawIOBase):
    """A non-seekable body stream that hands out at most `step` bytes per read, like a socket."""

    def __init__(self, data: bytes, step: int = 4096, fail_after: int | None = None):
        self._data = data
        self._pos = 0
        self._step = step
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("connection reset by peer")
        limit = self._step if size is None or size < 0 else min(size, self._step)
        if self._fail_after is not None:
            limit = min(limit, self._fail_after - self._pos)
        chunk = self._data[self._pos : self._pos + limit]
        self._pos += len(chunk)
        return chunk


def send_raw(
    client: Any,
    method: str,
    path: str,
    stream: Any,
    headers: dict[str, str],
    content_length: int | str | None = None,
) -> Any:
    """Send `stream` as the body with full control of Content-Length.

    Werkzeug's test client always sets CONTENT_LENGTH from the input stream; a WSGI server
    receiving `Transfer-Encoding: chunked` sets none and hands the application the de-chunked
    bytes. With `content_length=None` the request has no Content-Length at all; otherwise the
    given value is sent whatever the stream holds (a shorter stream is a client that went away).
    """
    builder = EnvironBuilder(path=path, method=method, headers=headers, input_stream=io.BytesIO())
    environ = builder.get_environ()
    environ.pop("CONTENT_LENGTH", None)
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    environ["wsgi.input"] = stream
    return client.open(Request(environ))


def send_chunked(client: Any, method: str, path: str, data: bytes, **headers: str) -> Any:
    """A `Transfer-Encoding: chunked` request (no Content-Length) carrying `data`."""
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    sent["Transfer-Encoding"] = "chunked"
    return send_raw(client, method, path, Trickle(data), sent)


def patch_chunked(client: Any, path: str, offset: int, data: bytes, **headers: str) -> Any:
    """PATCH `data` at `offset` as a chunked body."""
    sent = {**TUS, **OCTET, "Upload-Offset": str(offset)}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return send_raw(client, "PATCH", path, Trickle(data), {**sent, "Transfer-Encoding": "chunked"})


def digest_header(algorithm: str, data: bytes) -> str:
    """An Upload-Checksum header value for `data`."""
    raw = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(raw).decode()}"


def stored_objects(app: Any, upload_id: str) -> dict[str, int]:
    """What the app's data store physically holds for an upload: {name: size}.

    Local store: the upload's file. S3 store: every object under the upload's prefix (parts,
    orphans and info.json).
    """
    store = app.extensions["tusserver"].store
    if store.name == "s3":
        from tests.support.s3 import object_sizes

        return object_sizes(store, store.upload_prefix(upload_id))
    path = app.extensions["tusserver"].settings.uploads_dir / upload_id
    return {path.name: path.stat().st_size} if path.exists() else {}


def stored_data_size(app: Any, upload_id: str) -> int:
    """Bytes of upload data the store holds for an upload, committed or not (no info.json)."""
    return sum(
        size for name, size in stored_objects(app, upload_id).items() if not name.endswith(".json")
    )


def all_stored(app: Any) -> dict[str, int]:
    """Everything the app's data store holds, for every upload: {name: size}."""
    store = app.extensions["tusserver"].store
    if store.name == "s3":
        from tests.support.s3 import object_sizes

        return object_sizes(store)
    directory = app.extensions["tusserver"].settings.uploads_dir
    if not directory.exists():
        return {}
    return {p.name: p.stat().st_size for p in directory.iterdir()}


def tus_state(client: Any, path: str) -> tuple[int, dict[str, str]]:
    """A tus HEAD reduced to what a client sees: status and the tus headers."""
    response = head(client, path)
    keep = ("Upload-Offset", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata")
    keep += ("Upload-Concat", "Upload-Expires")
    return response.status_code, {k: response.headers[k] for k in keep if k in response.headers}
