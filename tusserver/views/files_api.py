"""Small files through JSON, for clients that cannot speak tus.

- `POST /api/files` `{"filename", "content_base64" | "text", "filetype"?, "tags"?, "previous"?}`
  -> 201 the upload (the shape of `GET /api/uploads/<id>`) with `Location`: a complete upload,
  stored and downloadable exactly like a finished tus upload.
- `GET /api/uploads/<id>/content?encoding=base64|text` -> `{"id", "filename", "filetype",
  "size", "content_base64" | "text"}` for a complete upload of at most `TUSSERVER_JSON_UPLOAD_MAX`.

Both stream: the request is decoded while it is read (json_upload.py), straight into the data
store; the answer is encoded while the stored bytes are read. Memory never holds the file.
"""

from __future__ import annotations

import binascii
import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from ..body import BodyReader
from ..errors import BadRequest, UnsupportedMediaType
from ..json_upload import READ_CHUNK, FileFields, JsonUploadReader, raw_limit_for, too_large
from ..keepalive import BODY_KEY
from ..protocol import is_upload_id, parse_length
from ..rate import MinimumRate
from ..service import CompleteFile, Download, valid_filename
from ..settings import Settings
from ..tags import parse_tags, valid_tags
from ..wsgi_input import body_stream
from .api import upload_json
from .common import principal, service, upload_url

bp = Blueprint("files_api", __name__, url_prefix="/api")

FILETYPE_MAX = 255
FILETYPE_PATTERN = re.compile(r"[A-Za-z0-9][\x20-\x7e]{0,254}")
ENCODE_BLOCK = 3 * 16 * 1024
"""Bytes base64-encoded at a time (a multiple of 3, so the pieces join without padding)."""


@bp.post("/files")
def create_file() -> Response:
    """Create a complete upload from one JSON document (see the module docstring)."""
    settings = service().settings
    limit = settings.json_upload_max
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("send the file as application/json")
    raw_limit = raw_limit_for(limit)
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    length = None if chunked else _content_length()
    if length is not None and length > raw_limit:
        raise too_large(limit)  # refused before a byte of the body is read
    body = BodyReader(
        body_stream(request.environ),
        length if length is not None or chunked else 0,
        chunk_size=READ_CHUNK,
        sock=request.environ.get("gunicorn.socket"),
        min_rate=MinimumRate(settings.min_rate, settings.min_rate_window),
    )
    g.body = body
    request.environ[BODY_KEY] = body
    reader = JsonUploadReader(body, limit, raw_limit)

    def describe() -> CompleteFile:
        return CompleteFile(_metadata(reader.finish(), settings))

    info = service().create_complete(principal(), reader.content(), describe, limit)
    response = jsonify(upload_json(info))
    response.status_code = 201
    response.headers["Location"] = upload_url(info.id)
    return response


@bp.get("/uploads/<upload_id>/content")
def upload_content(upload_id: str) -> Response:
    """A small complete upload as JSON, its bytes base64-encoded (or as UTF-8 text)."""
    encoding = request.args.get("encoding", "base64")
    if encoding not in ("base64", "text"):
        raise BadRequest("encoding must be base64 or text")
    download = service().download(upload_id, principal())
    limit = service().settings.json_upload_max
    if download.size > limit:
        raise too_large(limit)
    if encoding == "text":
        _require_text(download)
    member = "content_base64" if encoding == "base64" else "text"
    head = json.dumps(
        {
            "id": download.info.id,
            "filename": download.info.filename,
            "filetype": download.info.filetype,
            "size": download.size,
        }
    )
    opening = f'{head[:-1]}, "{member}": "'.encode()
    chunks = download.read(0, download.size)  # the first backend read happens here: a 503
    encoded = _base64_pieces(chunks) if encoding == "base64" else _text_pieces(chunks)
    response = Response(_document(opening, encoded), mimetype="application/json")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


# -- request fields ------------------------------------------------------------------------
def _metadata(fields: FileFields, settings: Settings) -> dict[str, str]:
    """The upload's metadata from the body's members: the tus keys a tus client would send."""
    values = fields.values
    filename = values.get("filename")
    if not isinstance(filename, str):
        raise BadRequest('the file needs a "filename" (a string)')
    metadata = {"filename": valid_filename(filename)}
    filetype = values.get("filetype")
    if filetype is not None:
        metadata["filetype"] = _valid_filetype(filetype)
    elif fields.content_kind == "text":
        metadata["filetype"] = "text/plain; charset=utf-8"
    tags = values.get("tags")
    if tags is not None:
        metadata["tags"] = _tags_value(tags)
    previous = values.get("previous")
    if previous is not None:
        if not isinstance(previous, str) or not is_upload_id(previous):
            raise BadRequest("previous must be the id of an upload (the version this replaces)")
        metadata["previous"] = previous
    size = sum(len(k) + len(v.encode()) for k, v in metadata.items())
    if size > settings.max_metadata_size:
        raise BadRequest(f"the file's metadata is above {settings.max_metadata_size} bytes")
    return metadata


def _valid_filetype(value: Any) -> str:
    if not isinstance(value, str) or not FILETYPE_PATTERN.fullmatch(value):
        raise BadRequest(
            f"filetype must be a media type such as text/plain (printable ASCII, at most "
            f"{FILETYPE_MAX} characters)"
        )
    return value.strip()


def _tags_value(value: Any) -> str:
    """Tags as the `tags` metadata value (comma-separated), as a tus client would send them;
    checked by the one tag rule (tags.py)."""
    if isinstance(value, str):
        return ",".join(parse_tags(value))
    if not isinstance(value, list):
        raise BadRequest('tags must be a list of strings, such as ["invoices", "2026"]')
    return ",".join(valid_tags(value))


def _content_length() -> int | None:
    value = request.headers.get("Content-Length")
    if value is None or not value.strip():
        return None
    return parse_length("Content-Length", value)


# -- the content answer --------------------------------------------------------------------
def _require_text(download: Download) -> None:
    """A first streaming pass: the upload must be UTF-8 text before the answer starts."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for chunk in download.read(0, download.size):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BadRequest("the upload is not UTF-8 text: ask for encoding=base64") from None


def _document(opening: bytes, pieces: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield opening
        yield from pieces
        yield b'"}'
    finally:
        close = getattr(pieces, "close", None)
        if close:
            close()


def _base64_pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Base64 of the chunks, encoded a block at a time (blocks of a multiple of 3 bytes)."""
    carry = b""
    try:
        for chunk in chunks:
            data = carry + chunk
            usable = len(data) - len(data) % 3
            for start in range(0, usable, ENCODE_BLOCK):
                block = data[start : min(usable, start + ENCODE_BLOCK)]
                yield binascii.b2a_base64(block, newline=False)
            carry = data[usable:]
        if carry:
            yield binascii.b2a_base64(carry, newline=False)
    finally:
        _close(chunks)


def _text_pieces(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks as the body of a JSON string (UTF-8, escaped where JSON needs it)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                yield json.dumps(text, ensure_ascii=False)[1:-1].encode()
        tail = decoder.decode(b"", final=True)
        if tail:
            yield json.dumps(tail, ensure_ascii=False)[1:-1].encode()
    finally:
        _close(chunks)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close:
        close()
