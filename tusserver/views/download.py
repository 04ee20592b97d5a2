"""GET (and plain HEAD) of a complete upload: streaming, Range, validators, safe headers.

Local uploads go out through `wsgi.file_wrapper`, which gunicorn turns into sendfile; everything
else (S3 parts, final uploads made of partial ones) is streamed chunk by chunk. Range, ETag and
If-* parsing are Werkzeug's; this module only decides what to send.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from werkzeug.datastructures import ContentRange
from werkzeug.http import http_date, is_resource_modified
from werkzeug.wsgi import wrap_file

from ..errors import RangeNotSatisfiable, TusError
from ..protocol_ietf import decode_digest_values, format_digests, parse_want_digest
from ..service import Download
from .common import TUS_PATH, principal, service

bp = Blueprint("download", __name__)

FILE_BLOCK = 1024 * 1024
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_INLINE_PREFIXES = ("audio/", "video/")
_INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
_INLINE_EXACT = {"text/plain", *_INLINE_IMAGES}


@bp.route(f"{TUS_PATH}<upload_id>", methods=["GET"])
def download(upload_id: str) -> Response:
    """Stream the upload, or the requested byte range of it."""
    return _respond(service().download(upload_id, principal()), send_body=True)


def download_head(upload_id: str) -> Response:
    """The same headers as GET, without the body (plain HTTP HEAD, no Tus-Resumable)."""
    return _respond(service().download(upload_id, principal()), send_body=False)


def send_download(download: Download, send_body: bool) -> Response:
    """The response for a download, shared by every route that serves upload bytes.

    Signed links (`views/links.py`) serve through this too, so Range, ETag, 304 and the safe
    headers can never differ between `/files/<id>` and a link.
    """
    return _respond(download, send_body)


def _respond(download: Download, send_body: bool) -> Response:
    headers = _headers(download)
    last_modified = datetime.fromtimestamp(download.last_modified, UTC)
    if not is_resource_modified(request.environ, etag=download.etag, last_modified=last_modified):
        return Response(status=304, headers=_validators(download))
    start, end, status = 0, download.size, 200
    byte_range = request.range
    # Only a single byte range is served as 206; other units are ignored (RFC 7233 3.1) and
    # several ranges get the whole file, which a client must accept.
    if (
        byte_range is not None
        and byte_range.units == "bytes"
        and len(byte_range.ranges) == 1
        and _range_applies(download)
    ):
        span = _satisfiable(byte_range.ranges[0], download.size)
        if span is None:
            raise RangeNotSatisfiable(
                f"the upload has {download.size} bytes",
                headers={"Content-Range": f"bytes */{download.size}"},
            )
        start, end = span
        status = 206
        headers["Content-Range"] = ContentRange("bytes", start, end, download.size).to_header()
    headers["Content-Length"] = str(end - start)
    g.bytes_sent = end - start if send_body else 0
    if not send_body or end == start:
        return Response(status=status, headers=headers)
    body, passthrough = _body(download, start, end)
    return Response(body, status=status, headers=headers, direct_passthrough=passthrough)


def _satisfiable(byte_range: tuple[int, int | None], size: int) -> tuple[int, int] | None:
    """The `[start, end)` a parsed byte range selects from `size` bytes, or None (416).

    A suffix range longer than the file selects the whole file and an end past the file is cut
    to its end (RFC 7233 2.1); werkzeug's `range_for_length` refuses the former.
    """
    first, stop = byte_range
    if stop is None:
        first, stop = (max(size + first, 0) if first < 0 else first), size
    stop = min(stop, size)
    if first >= stop:
        return None
    return first, stop


def _range_applies(download: Download) -> bool:
    """If-Range: honour the Range only while the client's validator still matches."""
    if_range = request.if_range
    if if_range.etag is not None:
        return if_range.etag == download.etag
    if if_range.date is not None:
        return int(if_range.date.timestamp()) >= int(download.last_modified)
    return True


def _body(download: Download, start: int, end: int) -> tuple[object, bool]:
    if download.path is not None:
        handle = download.open_file()  # 404/410 if terminated meanwhile; the server closes it
        handle.seek(start)
        wrapped = wrap_file(request.environ, handle, FILE_BLOCK)
        if end == download.size or "gunicorn.socket" in request.environ:
            # gunicorn sends exactly Content-Length bytes (sendfile), so the wrapper can go as is
            return wrapped, True
        return _limited(wrapped, end - start), True
    return _primed(download.read(start, end)), False


def _primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Read the first chunk now, so a store that fails at once is a 503, not a broken 200.

    Until the first chunk exists the status line is not sent: a failure here goes through the
    error handler like any other. A failure after it can only cut the body short (see
    request_log.py).
    """
    try:
        first = next(chunks)
    except StopIteration:
        return iter(())
    except BaseException:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        raise
    return _chain(first, chunks)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def _limited(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """Stop a file iterator after `count` bytes (a range that ends before the file does)."""
    try:
        for chunk in chunks:
            if len(chunk) >= count:
                yield chunk[:count]
                return
            count -= len(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()


def _validators(download: Download) -> dict[str, str]:
    return {
        "ETag": f'"{download.etag}"',
        "Last-Modified": http_date(download.last_modified),
        "Cache-Control": "private, no-cache",
    }


def _headers(download: Download) -> dict[str, str]:
    content_type = media_type(download.info.filetype, download.info.filename)
    inline = is_inline_safe(content_type)
    headers = {
        **_validators(download),
        "Accept-Ranges": "bytes",
        "Content-Type": served_type(content_type),
        "Content-Disposition": content_disposition(
            "inline" if inline else "attachment", download.info.filename
        ),
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    digest = _repr_digest(download)
    if digest:
        headers["Repr-Digest"] = digest
    return headers


def _repr_digest(download: Download) -> str:
    """RFC 9530: answer Want-Repr-Digest with the digests we know of the stored file.

    They are known when the upload was created with Repr-Digest (and verified when it
    completed) or with Want-Repr-Digest (computed then). A Repr-Digest covers the whole file, so
    it is the same on a 206.
    """
    want = request.headers.get("Want-Repr-Digest")
    known = decode_digest_values(download.info.digests)
    if want is None or not known:
        return ""
    try:
        wanted = parse_want_digest("Want-Repr-Digest", want)
    except TusError:
        return ""  # a preference we cannot read is ignored, never an error on a download
    chosen = {name: known[name] for name in wanted if name in known}
    return format_digests(chosen) if chosen else ""


def media_type(claimed: str, filename: str) -> str:
    """The client's claimed type if it is a well-formed media type, else a guess by name."""
    candidate = claimed.split(";")[0].strip().lower()
    if _MEDIA_TYPE.fullmatch(candidate):
        return candidate
    guessed, _ = mimetypes.guess_type(filename) if filename else (None, None)
    return guessed or "application/octet-stream"


def is_inline_safe(content_type: str) -> bool:
    """Only types a browser cannot run as a page are shown inline; HTML and SVG never are."""
    return content_type in _INLINE_EXACT or content_type.startswith(_INLINE_PREFIXES)


def served_type(content_type: str) -> str:
    """The Content-Type a download goes out with: its own only when it is inline-safe.

    `Content-Disposition: attachment` does not stop `<script src>`, `<link rel=stylesheet>` or a
    worker from using a response: they look only at the type. A JavaScript upload served as
    `text/javascript` would run from our origin (and pass a `script-src 'self'` policy);
    `application/octet-stream` with `nosniff` is refused by every such element.
    """
    return content_type if is_inline_safe(content_type) else "application/octet-stream"


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266: an ASCII `filename` fallback plus the exact UTF-8 name in `filename*`."""
    if not filename:
        return disposition
    clean = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C")
    clean = clean.replace("/", "_").replace("\\", "_") or "download"
    ascii_name = unicodedata.normalize("NFKD", clean).encode("ascii", "ignore").decode("ascii")
    ascii_name = ascii_name.replace('"', "'").strip() or "download"
    header = f'{disposition}; filename="{ascii_name}"'
    if ascii_name != clean:
        header += f"; filename*=UTF-8''{quote(clean, safe='')}"
    return header
