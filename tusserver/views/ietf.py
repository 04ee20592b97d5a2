"""The IETF draft "Resumable Uploads for HTTP" on the same URLs and uploads as tus 1.0.0.

A request carrying `Upload-Draft-Interop-Version` follows the draft: this module answers it
before the tus views see it (a `before_app_request` hook picks it out by its route). Creation is
`POST /files/`, and the upload resource is `/files/<id>`, the very URL tus uses, so one upload can
be created with one protocol and finished or read with the other. Everything goes through the same
`UploadService` calls as tus (locks, fencing, expiry, hooks, metrics); this module only reads the
draft's headers, calls the service and writes the draft's headers back.

Served: creation with `Upload-Complete` `?0`/`?1`, an optional `Upload-Length` and a body,
with a `104 Upload Resumption Supported` interim response carrying `Location` and `Upload-Limit`
before the body is read; offset retrieval (HEAD); append (PATCH with `application/partial-upload`);
cancellation (DELETE); discovery (OPTIONS with `Accept-Patch` and `Upload-Limit`); RFC 9457
problem documents; RFC 9530 `Content-Digest` (each request) and `Repr-Digest` /
`Want-Repr-Digest` (the whole upload).
Downloads (GET) are the common download view, which answers `Want-Repr-Digest` too.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, g, request
from werkzeug.http import parse_options_header

from ..body import BodyReader
from ..errors import InconsistentLength, InvalidHeader, TusError, UnsupportedMediaType
from ..interim import send_interim
from ..keepalive import BODY_KEY
from ..models import UploadInfo
from ..protocol import parse_length, parse_metadata_values
from ..protocol_ietf import (
    INTERIM_STATUS,
    INTEROP_HEADER,
    LATEST,
    PARTIAL_UPLOAD_TYPE,
    Draft,
    decode_digest_values,
    digest_checksums,
    format_boolean,
    format_digests,
    format_limits,
    parse_boolean,
    parse_digests,
    parse_integer,
    parse_interop_version,
)
from ..service import NewUpload
from ..wsgi_input import body_stream
from .common import TUS_PATH, principal, service, upload_url
from .problem import render_problem
from .tus import repr_digests

bp = Blueprint("ietf", __name__)

_CONTROL_TYPES = {PARTIAL_UPLOAD_TYPE, "application/offset+octet-stream"}


def draft() -> Draft | None:
    """The draft the current request follows (None for tus and plain HTTP requests)."""
    return g.get("draft")


@bp.before_app_request
def dispatch() -> Response | None:
    """Answer draft requests to the upload endpoints; leave everything else to its view."""
    value = request.headers.get(INTEROP_HEADER)
    if value is None or not request.path.startswith(TUS_PATH.rstrip("/")):
        return None
    g.draft = LATEST  # so that even a refused version gets its answer as a problem document
    g.draft = parse_interop_version(value)  # raises 400 naming the versions we serve
    rule = request.url_rule
    handler = _HANDLERS.get((rule.endpoint, request.method)) if rule is not None else None
    if handler is None:
        return None  # downloads, and routing errors (rendered as problems)
    upload_id = (request.view_args or {}).get("upload_id")
    return handler(upload_id) if upload_id is not None else handler()


def options(upload_id: str | None = None) -> Response:
    """Discovery: `Accept-Patch` names the append media type; `Upload-Limit` the limits."""
    response = _empty(204)
    response.headers["Accept-Patch"] = PARTIAL_UPLOAD_TYPE
    _limit_header(response, None)
    return response


def create() -> Response:
    """Create an upload; announce it with a 104 before reading the body; append the body."""
    current = _draft()
    complete = _required_boolean("Upload-Complete")
    length = _optional_integer("Upload-Length")
    content_length = _content_length()
    if complete and content_length is not None:
        if length is not None and length != content_length:
            raise InconsistentLength(
                f"Upload-Length {length} does not match the {content_length} bytes of content "
                "that complete the upload"
            )
        length = content_length
    metadata, binary = _representation_metadata()
    checksums = _content_digest()
    info = service().create(
        NewUpload(
            length=length,
            defer_length=length is None,
            metadata=metadata,
            metadata_binary=binary,
            digests=repr_digests(),
            body_length=content_length if _has_body() else None,
        ),
        principal(),
    )
    location = upload_url(info.id)
    if service().settings.sends_interim_responses:
        interim = {"Location": location, INTEROP_HEADER: str(current.interop)}
        interim["Upload-Limit"] = format_limits(service().limits(info), current)
        send_interim(request.environ, INTERIM_STATUS, interim)
    if not info.is_complete and (complete or _has_body()):
        try:
            info = service().append_completing(
                info.id, principal(), 0, _body_reader(), checksums, complete=complete
            )
        except TusError as error:  # the upload exists: say where, so the client can resume
            g.provided_offset = 0
            response = render_problem(error, current)
            response.headers["Location"] = location
            return response
    response = _state_response(201, info)
    response.headers["Location"] = location
    return response


def head(upload_id: str) -> Response:
    """Offset retrieval: where the upload stands, never cached."""
    info = service().info(upload_id, principal())
    response = _state_response(204, info)
    response.headers["Cache-Control"] = "no-store"
    return response


def append(upload_id: str) -> Response:
    """Append the body at `Upload-Offset`; `Upload-Complete: ?1` ends the upload with it."""
    content_type = parse_options_header(request.headers.get("Content-Type", ""))[0]
    if content_type.lower() != PARTIAL_UPLOAD_TYPE:
        raise UnsupportedMediaType(f"Content-Type must be {PARTIAL_UPLOAD_TYPE}")
    offset_header = request.headers.get("Upload-Offset")
    if offset_header is None:
        raise InvalidHeader("Upload-Offset is required")
    offset = parse_integer("Upload-Offset", offset_header)
    g.provided_offset = offset
    complete = _required_boolean("Upload-Complete")
    length = _optional_integer("Upload-Length")
    info = service().append_completing(
        upload_id,
        principal(),
        offset,
        _body_reader(),
        _content_digest(),
        complete=complete,
        length=length,
    )
    return _state_response(204, info)


def cancel(upload_id: str) -> Response:
    """Cancellation: the upload and its bytes are gone (a running append is asked to stop)."""
    service().terminate(upload_id, principal())
    return _empty(204)


_HANDLERS: dict[tuple[str, str], Callable[..., Response]] = {
    ("tus.options", "OPTIONS"): options,
    ("tus.create", "POST"): create,
    ("tus.head", "HEAD"): head,
    ("tus.patch", "PATCH"): append,
    ("tus.terminate", "DELETE"): cancel,
}


# -- helpers -----------------------------------------------------------------------------------


def _draft() -> Draft:
    current = draft()
    assert current is not None  # dispatch() set it before calling a handler
    return current


def _empty(status: int) -> Response:
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def _state_response(status: int, info: UploadInfo) -> Response:
    """The upload's state in the draft's fields (and the whole upload's digest once known)."""
    response = _empty(status)
    complete = info.is_complete
    response.headers["Upload-Complete"] = format_boolean(complete)
    # Interop 6 (draft -05) requires Upload-Offset on append responses; later drafts allow it,
    # and tus-js-client's ietf-draft-05 mode reads it from every response.
    response.headers["Upload-Offset"] = str(info.offset)
    if info.length is not None:
        response.headers["Upload-Length"] = str(info.length)
    _limit_header(response, info)
    known = decode_digest_values(info.digests)
    if complete and known:
        response.headers["Repr-Digest"] = format_digests(known)
    return response


def _limit_header(response: Response, info: UploadInfo | None) -> None:
    value = format_limits(service().limits(info), _draft())
    if value:
        response.headers["Upload-Limit"] = value


def _required_boolean(name: str) -> bool:
    value = request.headers.get(name)
    if value is None:
        raise InvalidHeader(f"{name} is required (?0 or ?1)")
    return parse_boolean(name, value)


def _optional_integer(name: str) -> int | None:
    value = request.headers.get(name)
    return None if value is None else parse_integer(name, value)


def _content_digest() -> tuple:
    value = request.headers.get("Content-Digest")
    return () if value is None else digest_checksums(parse_digests("Content-Digest", value))


def _representation_metadata() -> tuple[dict[str, str], dict[str, str]]:
    """File name and type from the creation request's representation metadata.

    The draft carries them in `Content-Disposition` (filename) and `Content-Type`; tus-js-client
    in its draft modes also sends tus's `Upload-Metadata`, which is honoured first.
    """
    metadata, binary = parse_metadata_values(
        request.headers.get("Upload-Metadata", ""), service().settings.max_metadata_size
    )
    disposition = request.headers.get("Content-Disposition")
    if disposition and "filename" not in metadata:
        _, params = parse_options_header(disposition)
        filename = params.get("filename")
        if filename:
            metadata["filename"] = filename[:255]
    content_type = parse_options_header(request.headers.get("Content-Type", ""))[0].lower()
    if content_type and content_type not in _CONTROL_TYPES and "filetype" not in metadata:
        metadata["filetype"] = content_type[:255]
    return metadata, binary


def _is_chunked() -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _content_length() -> int | None:
    if _is_chunked():
        return None
    value = request.headers.get("Content-Length")
    if value is None or not value.strip():
        return 0 if request.method == "POST" else None
    return parse_length("Content-Length", value)


def _has_body() -> bool:
    return _is_chunked() or bool(_content_length())


def _body_reader() -> BodyReader:
    """The request body, streamed in bounded chunks (straight from gunicorn's socket if it can)."""
    reader = BodyReader(
        body_stream(request.environ),
        None if _is_chunked() else (_content_length() or 0),
        chunk_size=service().settings.read_chunk_size,
        sock=request.environ.get("gunicorn.socket"),
    )
    g.body = reader
    request.environ[BODY_KEY] = reader  # keepalive.SettleBody: a cut-off body closes the socket
    return reader
