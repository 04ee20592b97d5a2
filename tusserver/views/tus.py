"""The tus 1.0.0 endpoints: OPTIONS, POST, HEAD, PATCH and DELETE under /files/."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from ..body import BodyReader
from ..errors import Forbidden, InvalidHeader, TusError, UnsupportedMediaType
from ..keepalive import BODY_KEY
from ..models import UploadInfo
from ..protocol import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    Checksum,
    check_tus_resumable,
    encode_metadata,
    format_concat,
    http_date,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_length,
    parse_metadata_values,
    upload_id_from_url,
)
from ..protocol_ietf import (
    PARTIAL_UPLOAD_TYPE,
    digest_checksums,
    encode_digest_values,
    format_limits,
    parse_digests,
    parse_want_digest,
)
from ..rate import MinimumRate
from ..service import NewUpload
from ..wsgi_input import body_stream
from .common import TUS_PATH, principal, render_error, service, upload_url
from .download import download_head
from .problem import request_draft

bp = Blueprint("tus", __name__)

EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "expiration",
    "checksum",
    "concatenation",
    "concatenation-unfinished",
)


@bp.after_request
def add_tus_resumable(response: Response) -> Response:
    if request_draft() is None:  # IETF draft responses (views/ietf.py) do not speak tus
        response.headers["Tus-Resumable"] = TUS_VERSION
    return response


@bp.route(TUS_PATH, methods=["OPTIONS"], strict_slashes=False)
@bp.route(f"{TUS_PATH}<upload_id>", methods=["OPTIONS"])
def options(upload_id: str | None = None) -> Response:
    """Tell clients what this server supports (no Tus-Resumable needed)."""
    response = _empty(204)
    response.headers["Tus-Version"] = TUS_VERSION
    response.headers["Tus-Extension"] = ",".join(EXTENSIONS)
    response.headers["Tus-Checksum-Algorithm"] = ",".join(CHECKSUM_ALGORITHMS)
    max_size = service().settings.max_size
    if max_size:
        response.headers["Tus-Max-Size"] = str(max_size)
    # Discovery for IETF draft clients that ask without Upload-Draft-Interop-Version.
    response.headers["Accept-Patch"] = f"{OFFSET_CONTENT_TYPE}, {PARTIAL_UPLOAD_TYPE}"
    limits = format_limits(service().limits())
    if limits:
        response.headers["Upload-Limit"] = limits
    return response


@bp.route(TUS_PATH, methods=["POST"], strict_slashes=False)
def create() -> Response:
    """Create an upload, a partial one, or a final one; optionally with the first bytes."""
    check_tus_resumable(request.headers.get("Tus-Resumable"))
    settings = service().settings
    length = _optional_length("Upload-Length")
    defer = request.headers.get("Upload-Defer-Length")
    defer_length = parse_defer_length(defer) if defer is not None else False
    if length is not None and defer_length:
        raise InvalidHeader("send either Upload-Length or Upload-Defer-Length, not both")
    metadata, binary = parse_metadata_values(
        request.headers.get("Upload-Metadata", ""), settings.max_metadata_size
    )
    concat_header = request.headers.get("Upload-Concat")
    concat = parse_concat(concat_header) if concat_header is not None else None
    has_body = _has_body()
    members: tuple[str, ...] = ()
    if concat and concat.kind == "final":
        if has_body:
            raise Forbidden("a final upload cannot carry a body")
        members = tuple(upload_id_from_url(url, TUS_PATH) for url in concat.urls)
    elif has_body:
        _require_offset_content_type()
    checksum = _optional_checksum()
    info = service().create(
        NewUpload(
            length=length,
            defer_length=defer_length,
            metadata=metadata,
            concat=concat.kind if concat else None,
            members=members,
            body_length=None if _is_chunked() or not has_body else _content_length(),
            metadata_binary=binary,
            digests=repr_digests(),
        ),
        principal(),
    )
    location = upload_url(info.id)
    if has_body and not info.is_final:
        try:
            info = service().append(info.id, principal(), 0, _body_reader(), checksum)
        except TusError as error:  # the upload exists: tell the client where, so it can resume
            response = render_error(error)
            response.headers["Location"] = location
            response.headers["Upload-Offset"] = "0"
            return response
    response = _empty(201)
    response.headers["Location"] = location
    response.headers["Upload-Offset"] = str(info.offset)
    _expiry_header(response, info)
    return response


@bp.route(f"{TUS_PATH}<upload_id>", methods=["HEAD"])
def head(upload_id: str) -> Response:
    """The upload's offset and length. Without Tus-Resumable: the download's headers."""
    if request.headers.get("Tus-Resumable") is None:
        return download_head(upload_id)
    check_tus_resumable(request.headers.get("Tus-Resumable"))
    info = service().info(upload_id, principal())
    response = _empty(200)
    response.headers["Cache-Control"] = "no-store"
    if info.is_final and not info.is_complete:
        # concatenation-unfinished: no offset until the partial uploads are all complete
        length = service().final_length(info)
        if length is not None:
            response.headers["Upload-Length"] = str(length)
    else:
        response.headers["Upload-Offset"] = str(info.offset)
        if info.length is None:
            response.headers["Upload-Defer-Length"] = "1"
        else:
            response.headers["Upload-Length"] = str(info.length)
    if info.metadata:
        response.headers["Upload-Metadata"] = encode_metadata(info.metadata, info.metadata_binary)
    if info.concat:
        urls = [upload_url(member) for member in info.members]
        response.headers["Upload-Concat"] = format_concat(info.concat, urls)
    _expiry_header(response, info)
    return response


@bp.route(f"{TUS_PATH}<upload_id>", methods=["PATCH"])
def patch(upload_id: str) -> Response:
    """Append the body at Upload-Offset."""
    check_tus_resumable(request.headers.get("Tus-Resumable"))
    _require_offset_content_type()
    offset_header = request.headers.get("Upload-Offset")
    if offset_header is None:
        raise InvalidHeader("Upload-Offset is required")
    offset = parse_length("Upload-Offset", offset_header)
    length = _optional_length("Upload-Length")
    checksum = _optional_checksum()
    info = service().append(upload_id, principal(), offset, _body_reader(), checksum, length)
    response = _empty(204)
    response.headers["Upload-Offset"] = str(info.offset)
    _expiry_header(response, info)
    return response


@bp.route(f"{TUS_PATH}<upload_id>", methods=["DELETE"])
def terminate(upload_id: str) -> Response:
    """Terminate the upload and free its bytes."""
    check_tus_resumable(request.headers.get("Tus-Resumable"))
    service().terminate(upload_id, principal())
    return _empty(204)


def _empty(status: int) -> Response:
    """A response with no body and so no Content-Type."""
    response = Response(status=status)
    del response.headers["Content-Type"]
    return response


def _optional_length(name: str) -> int | None:
    value = request.headers.get(name)
    return None if value is None else parse_length(name, value)


def _optional_checksum() -> tuple[Checksum, ...]:
    """Upload-Checksum and RFC 9530 Content-Digest: every one given is verified."""
    checks: tuple[Checksum, ...] = ()
    value = request.headers.get("Upload-Checksum")
    if value is not None:
        checks += (parse_checksum(value),)
    digest = request.headers.get("Content-Digest")
    if digest is not None:
        checks += digest_checksums(parse_digests("Content-Digest", digest))
    return checks


def repr_digests() -> dict[str, str]:
    """The whole upload's digests to verify (Repr-Digest) or compute (Want-Repr-Digest)."""
    wanted: dict[str, str] = {}
    want = request.headers.get("Want-Repr-Digest")
    if want is not None:
        wanted = dict.fromkeys(parse_want_digest("Want-Repr-Digest", want)[:1], "")
    announced = request.headers.get("Repr-Digest")
    if announced is not None:
        wanted.update(encode_digest_values(parse_digests("Repr-Digest", announced)))
    return wanted


def _require_offset_content_type() -> None:
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType()


def _is_chunked() -> bool:
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _content_length() -> int | None:
    """The body's declared size; an empty CONTENT_LENGTH means none (PEP 3333 allows both)."""
    value = request.headers.get("Content-Length")
    if value is None or not value.strip():
        return None
    return parse_length("Content-Length", value)


def _has_body() -> bool:
    if _is_chunked():
        return True
    return bool(_content_length())


def _body_reader() -> BodyReader:
    """Wrap the raw WSGI input; the reader itself never reads past Content-Length."""
    expected = None if _is_chunked() else (_content_length() or 0)
    settings = service().settings
    reader = BodyReader(
        body_stream(request.environ),
        expected,
        chunk_size=settings.read_chunk_size,
        sock=request.environ.get("gunicorn.socket"),
        min_rate=MinimumRate(settings.min_rate, settings.min_rate_window),
    )
    g.body = reader
    request.environ[BODY_KEY] = reader
    return reader


def _expiry_header(response: Response, info: UploadInfo) -> None:
    if info.expires is not None and not info.is_complete:
        response.headers["Upload-Expires"] = http_date(info.expires)
