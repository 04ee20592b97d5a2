"""The S3 / MinIO data store: each upload is a run of part objects under one key prefix.

S3 objects cannot be appended to, so every PATCH body is cut into part objects of at most
`TUSSERVER_S3_PART_SIZE` bytes, each named by the absolute offset where it starts:
`<prefix><id>/<offset:020d>`. Naming by offset makes a write repeatable (a retry at the same
offset overwrites the same keys) and lets the service commit a write as a list of `Part`s in its
index only after every PUT was acknowledged (DESIGN.md invariant 1). Reads use that committed
index, never a bucket listing, so leftovers of failed or rejected writes ("orphans") are never
served; `delete` removes them with everything else under the upload's prefix.

The upload's info is kept beside its parts as `<prefix><id>/info.json` so `scan` can rebuild a
lost index from the bucket alone.

This is the only module that knows `minio` and `urllib3`. Every exception they raise is turned
into `BackendUnavailable` here (503 for the client), with a short message and a log line.
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Retry, Timeout

from .. import backend_status
from ..errors import BackendUnavailable
from ..models import Part, UploadInfo, WriteResult
from ..protocol import is_upload_id
from ..settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

INFO_NAME = "info.json"
PART_NAME_DIGITS = 20
MAX_OBJECT_SIZE = 5 * 1024**3
"""The largest object a single S3 PUT may create; a part must fit into one PUT."""

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
POOL_SIZE = 16
READ_AHEAD_THREADS = 4
"""Threads that send the GET of a download's next part while the current one streams."""

CLIENT_ERRORS: tuple[type[BaseException], ...] = (MinioException, HTTPError, OSError, ValueError)
"""What the client can raise for a backend problem: all of it becomes `BackendUnavailable`."""

CREDENTIAL_ERRORS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
    }
)

_PART_NAME = re.compile(f"[0-9]{{{PART_NAME_DIGITS}}}")
_CONTENT_RANGE_TOTAL = re.compile(r"/([0-9]+)\s*$")
_RESPONSE_CODE = re.compile(r"Response code: ([0-9]+)")


class StorageConfigError(BackendUnavailable):
    """The S3 store cannot work as configured (unreachable endpoint, rejected credentials).

    Raised at start-up by `ensure_bucket` with one line meant for an operator, so the CLI can
    print it instead of a traceback.
    """


def make_http_client() -> urllib3.PoolManager:
    """A connection pool that fails fast.

    minio's default pool waits up to 5 minutes per read and retries 5 times with backoff, so an
    S3 outage would hang every PATCH (and its upload lock) for many minutes. Here a connection
    attempt gives up after 5 s and a stalled read after 30 s. Only a connection that could not be
    established is retried, once (cheap: nothing was sent); a request that failed after it was
    sent, a read that timed out and an error status are not retried here, because the tus client
    retries the whole request itself.
    """
    return urllib3.PoolManager(
        timeout=Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
        maxsize=POOL_SIZE,
        cert_reqs="CERT_REQUIRED",
        retries=Retry(
            total=1,
            connect=1,
            read=0,
            status=0,
            redirect=0,
            other=0,
            backoff_factor=0.2,
        ),
    )


def parse_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """Split `host:port` or `http(s)://host:port` into minio's (netloc, secure).

    A URL's scheme decides TLS; without a scheme `TUSSERVER_S3_SECURE` does. minio wants a bare
    host, so a path in the URL is a configuration error rather than something to ignore.
    """
    text = endpoint.strip()
    if "://" not in text:
        netloc = text.rstrip("/")
        if not netloc or "/" in netloc:
            raise StorageConfigError(f"S3 endpoint {endpoint!r} is not host:port or a URL")
        return netloc, secure
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise StorageConfigError(f"S3 endpoint {endpoint!r} must use http:// or https://")
    if not parts.netloc or parts.path.strip("/") or parts.query or parts.fragment:
        raise StorageConfigError(f"S3 endpoint {endpoint!r} must be a bare http(s)://host:port")
    return parts.netloc, parts.scheme == "https"


def info_to_dict(info: UploadInfo) -> dict[str, Any]:
    """The JSON-ready form of `info` stored as info.json (every field except `parts`).

    Parts are left out on purpose: the committed part list lives in the state store, and on a
    rebuild the parts are recovered from the part objects themselves.
    """
    data: dict[str, Any] = {}
    for item in fields(UploadInfo):
        if item.name == "parts":
            continue
        value = getattr(info, item.name)
        if item.name == "members":
            value = list(value)
        elif item.name in ("metadata", "metadata_binary", "digests"):
            value = dict(value)
        data[item.name] = value
    return data


def info_from_dict(data: dict[str, Any]) -> UploadInfo:
    """Rebuild an `UploadInfo` from `info_to_dict` output; unknown keys are ignored.

    Raises ValueError for a document that is not an upload's info, so a damaged or foreign
    info.json is skipped by `scan` instead of poisoning the rebuilt index.
    """
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("not an upload info document")

    def number(name: str, default: float | None) -> float | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        return float(value)

    def integer(name: str, default: int | None) -> int | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
        return value

    def text(name: str) -> str | None:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value

    metadata = data.get("metadata") or {}
    members = data.get("members") or []
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("metadata must be an object of strings")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError("members must be a list of strings")
    return UploadInfo(
        id=data["id"],
        length=integer("length", None),
        offset=integer("offset", 0) or 0,
        metadata=dict(metadata),
        created=number("created", 0.0) or 0.0,
        updated=number("updated", 0.0) or 0.0,
        expires=number("expires", None),
        completed=number("completed", None),
        owner=text("owner"),
        concat=text("concat"),
        members=tuple(members),
        metadata_binary=_string_map(data.get("metadata_binary"), "metadata_binary"),
        digests=_string_map(data.get("digests"), "digests"),
    )


def _string_map(value: Any, name: str) -> dict[str, str]:
    """An optional JSON object of strings (fields added after the first info.json format)."""
    value = value or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name} must be an object of strings")
    return dict(value)


def contiguous_parts(parts: Iterable[Part]) -> tuple[Part, ...]:
    """The run of `parts` that starts at 0 and continues without a gap or an overlap.

    Used to rebuild an index from a bucket listing, where orphans of failed writes sit between
    committed parts. Only bytes that are certainly contiguous may count towards the offset, so
    the run stops at the first gap and at the first part that overlaps the run; of two parts
    starting at the same offset the first one given is kept. Empty parts carry nothing and are
    skipped.
    """
    run: list[Part] = []
    taken: set[int] = set()
    expected = 0
    for part in sorted(parts, key=lambda p: p.start):  # stable: duplicates keep their order
        if part.size <= 0 or part.start in taken:
            continue
        if part.start != expected:
            break  # a gap (start > expected) or an overlap (start < expected)
        run.append(part)
        taken.add(part.start)
        expected = part.end
    return tuple(run)


class S3Store:
    """Uploads as part objects in one bucket, each upload under `<prefix><id>/`.

    One bucket for all uploads with a key prefix per upload: a bucket per upload runs into
    bucket-count limits and makes every upload pay for a bucket creation (DESIGN.md).
    """

    name = "s3"
    keeps_parts = True

    def __init__(self, settings: Settings, client: Minio | None = None):
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.part_size = settings.s3_part_size
        self.read_block = settings.read_chunk_size
        self._read_ahead: ThreadPoolExecutor | None = None  # made on first use (after a fork)
        self._read_ahead_lock = threading.Lock()
        if self.part_size > MAX_OBJECT_SIZE:
            raise StorageConfigError("TUSSERVER_S3_PART_SIZE must be at most 5 GiB (one S3 PUT)")
        netloc, secure = parse_endpoint(settings.s3_endpoint, settings.s3_secure)
        self.endpoint = netloc
        if client is None:
            try:
                client = Minio(
                    netloc,
                    access_key=settings.s3_access_key or None,
                    secret_key=settings.s3_secret_key or None,
                    secure=secure,
                    region=settings.s3_region or None,
                    http_client=make_http_client(),
                )
            except ValueError as exc:
                raise StorageConfigError(f"S3 settings rejected: {exc}") from None
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        """The store for `settings` with its own fail-fast client."""
        return cls(settings)

    # -- keys ---------------------------------------------------------------------------------

    def upload_prefix(self, upload_id: str) -> str:
        """The key prefix of every object of one upload (ends with '/')."""
        return f"{self.prefix}{upload_id}/"

    def part_key(self, upload_id: str, start: int) -> str:
        """The key of the part object that starts at absolute offset `start`."""
        return f"{self.prefix}{upload_id}/{start:0{PART_NAME_DIGITS}d}"

    def info_key(self, upload_id: str) -> str:
        return f"{self.prefix}{upload_id}/{INFO_NAME}"

    # -- start-up and health ------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet; called once at start-up.

        Any failure here is a deployment problem (wrong endpoint, credentials, permissions), so it
        is reported as `StorageConfigError` with one line an operator can act on.
        """
        try:
            if self.client.bucket_exists(self.bucket):
                return
            log.info("creating S3 bucket %s on %s", self.bucket, self.endpoint)
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                # Another worker starting at the same moment may have won the race. (Not
                # BucketAlreadyExists: that bucket belongs to someone else.)
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise
        except CLIENT_ERRORS as exc:
            message = self._config_message(exc)
            log.error("%s", message)
            raise StorageConfigError(message) from None

    def _config_message(self, exc: BaseException) -> str:
        if isinstance(exc, S3Error) and exc.code in CREDENTIAL_ERRORS:
            return f"S3 credentials rejected by {self.endpoint} ({exc.code})"
        if isinstance(exc, S3Error):
            return f"S3 bucket {self.bucket!r} unusable on {self.endpoint}: {describe(exc)}"
        if isinstance(exc, HTTPError | OSError):
            return f"S3 endpoint {self.endpoint} unreachable: {describe(exc)}"
        return f"S3 endpoint {self.endpoint} unusable: {describe(exc)}"

    def check(self) -> None:
        exists = self._call("check bucket", lambda: self.client.bucket_exists(self.bucket))
        if not exists:
            raise BackendUnavailable(f"S3 bucket {self.bucket!r} does not exist")

    # -- info ---------------------------------------------------------------------------------

    def create(self, info: UploadInfo) -> None:
        self.save_info(info)

    def save_info(self, info: UploadInfo) -> None:
        payload = json.dumps(info_to_dict(info), separators=(",", ":")).encode()
        self._call(
            "save info",
            lambda: self.client.put_object(
                self.bucket,
                self.info_key(info.id),
                io.BytesIO(payload),
                len(payload),
                content_type="application/json",
            ),
        )

    def load_info(self, upload_id: str) -> UploadInfo:
        """The info.json of one upload (parts empty)."""
        raw = self._get_small(self.info_key(upload_id))
        try:
            return info_from_dict(json.loads(raw))
        except ValueError as exc:
            log.error("S3 %s is not valid: %s", self.info_key(upload_id), exc)
            raise BackendUnavailable("stored upload info is damaged") from None

    # -- bytes --------------------------------------------------------------------------------

    def write(self, info: UploadInfo, chunks: Iterable[bytes]) -> WriteResult:
        """Cut `chunks` into part objects starting at `info.offset`, each PUT acknowledged.

        At most one part is buffered: chunks fill a buffer up to the part size, a full buffer
        goes out as one PUT of exactly that length, and whatever is left when the chunks end
        (the client went away, or the body was shorter) goes out as a final shorter part.
        Exceptions raised by `chunks` itself propagate untouched; parts already put are then
        orphans that are never read and that `delete` removes.
        """
        start = info.offset
        parts: list[Part] = []
        buffer = io.BytesIO()
        filled = 0
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                take = min(self.part_size - filled, len(view))
                buffer.write(view[:take])
                filled += take
                view = view[take:]
                if filled == self.part_size:
                    parts.append(self._put_part(info.id, start, buffer))
                    start += filled
                    buffer, filled = io.BytesIO(), 0
        if filled:
            parts.append(self._put_part(info.id, start, buffer))
        return WriteResult(sum(part.size for part in parts), tuple(parts))

    def _put_part(self, upload_id: str, start: int, buffer: io.BytesIO) -> Part:
        # getvalue() hands the filled buffer over without copying it (CPython shares it),
        # so a part costs its own size in memory once, not twice.
        payload = buffer.getvalue()
        size = len(payload)
        self._call(
            "write part",
            lambda: self.client.put_object(
                self.bucket,
                self.part_key(upload_id, start),
                io.BytesIO(payload),
                size,
                # A known length at or below the part size: one plain PUT, never a multipart
                # upload (minio would otherwise split anything above 5 MiB into threads).
                part_size=max(size, 5 * 1024 * 1024),
            ),
        )
        return Part(start, size)

    def discard(self, info: UploadInfo, result: WriteResult) -> None:
        """Delete the part objects of a write that will not be committed.

        Best effort: the parts are orphans either way (never read, removed by `delete`), so a
        failure here is logged and must not hide the error that caused the discard.
        """
        if not result.parts:
            return
        keys = [self.part_key(info.id, part.start) for part in result.parts]
        try:
            self._remove(keys)
        except BackendUnavailable:
            log.warning(
                "S3 discard of %d part(s) of %s failed; left as orphans", len(keys), info.id
            )

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes `[start, end)` from the committed parts (`info.parts`) that cover them.

        Each covering part is fetched with a ranged GET for just the needed slice and streamed in
        blocks of `read_chunk_size`; the response is closed and its connection released in a
        `finally`, also when the consumer stops early and closes this generator.

        Once the consumer has taken the first block of a part, the GET of the next part is sent
        from a helper thread, so S3's time to answer a request overlaps the streaming of the
        current part instead of adding up part after part (with 8 MiB parts against a local
        server, that wait was a third of a download's time). A read closed before then never
        requests the next part; an answer nobody will read is closed as soon as it arrives.
        """
        if start >= end:
            return
        spans = self._spans(info, start, end)
        part, offset, length = next(spans)
        response = self._open_part(info.id, part, offset, length)
        while True:
            following: tuple[Part, int, int] | None = None
            upcoming: Future[Any] | None = None
            stream = self._stream_part(info.id, part, response, length)
            try:
                for block in stream:
                    yield block
                    if upcoming is None:
                        following, upcoming = self._open_next(info.id, spans)
                if upcoming is None:
                    following, upcoming = self._open_next(info.id, spans)
            except BaseException:
                if upcoming is not None:
                    _close_when_done(upcoming)
                raise
            finally:
                stream.close()
            if following is None:
                return
            part, offset, length = following
            response = upcoming.result()

    def _spans(self, info: UploadInfo, start: int, end: int) -> Iterator[tuple[Part, int, int]]:
        """(part, offset in the part, length) for each part covering `[start, end)`, in order."""
        parts = sorted(info.parts)
        starts = [part.start for part in parts]
        index = bisect.bisect_right(starts, start) - 1
        position = start
        while position < end:
            if (
                index < 0
                or index >= len(parts)
                or not (parts[index].start <= position < parts[index].end)
            ):
                log.error("upload %s has no committed part covering offset %d", info.id, position)
                raise BackendUnavailable(f"upload {info.id} has no stored bytes at {position}")
            part = parts[index]
            stop = min(end, part.end)
            yield part, position - part.start, stop - position
            position = stop
            index += 1

    def _open_next(
        self, upload_id: str, spans: Iterator[tuple[Part, int, int]]
    ) -> tuple[tuple[Part, int, int] | None, Future[Any]]:
        """The next span and a future of its opened response (or of the error it ran into)."""
        failed: Future[Any] = Future()
        try:
            span = next(spans, None)
        except BackendUnavailable as exc:  # a hole in the index: raised when its turn comes
            failed.set_exception(exc)
            return (Part(0, 0), 0, 0), failed
        if span is None:
            failed.set_result(None)
            return None, failed
        with self._read_ahead_lock:
            if self._read_ahead is None:
                self._read_ahead = ThreadPoolExecutor(
                    max_workers=READ_AHEAD_THREADS, thread_name_prefix="s3-read-ahead"
                )
        return span, self._read_ahead.submit(self._open_part, upload_id, *span)

    def _open_part(self, upload_id: str, part: Part, offset: int, length: int) -> Any:
        key = self.part_key(upload_id, part.start)
        return self._call(
            "read part",
            lambda: self.client.get_object(self.bucket, key, offset=offset, length=length),
        )

    def _stream_part(
        self, upload_id: str, part: Part, response: Any, length: int
    ) -> Iterator[bytes]:
        key = self.part_key(upload_id, part.start)
        try:
            total = _content_range_total(response.headers.get("Content-Range"))
            if total is not None and total != part.size:
                log.error("S3 %s holds %d bytes, the index says %d", key, total, part.size)
                raise BackendUnavailable("stored part does not match the upload index")
            remaining = length
            try:
                for block in response.stream(self.read_block):
                    if len(block) > remaining:
                        raise BackendUnavailable("S3 returned more bytes than requested")
                    remaining -= len(block)
                    yield block
            except CLIENT_ERRORS as exc:
                raise _unavailable("read part", exc) from None
            if remaining:
                log.error("S3 %s ended %d bytes early", key, remaining)
                raise BackendUnavailable("stored part is shorter than the upload index")
        finally:
            response.close()
            response.release_conn()

    def local_path(self, info: UploadInfo) -> Path | None:
        return None

    # -- removal ------------------------------------------------------------------------------

    def delete(self, info: UploadInfo) -> None:
        """Remove every object under the upload's prefix: committed parts, orphans, info.json.

        Listed first, then removed in batches, so a listing is never changed under its own
        continuation token.
        """
        prefix = self.upload_prefix(info.id)
        keys = self._call(
            "list upload",
            lambda: [
                obj.object_name
                for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if obj.object_name
            ],
        )
        self._remove(keys)

    def _remove(self, keys: list[str]) -> None:
        if not keys:
            return
        errors = self._call(
            "delete objects",
            lambda: list(
                self.client.remove_objects(self.bucket, (DeleteObject(key) for key in keys))
            ),
        )
        if errors:
            first = errors[0]
            log.error(
                "S3 could not delete %d object(s), first %s: %s %s",
                len(errors),
                first.name,
                first.code,
                first.message,
            )
            raise BackendUnavailable(f"storage delete failed ({first.code})")

    # -- index rebuild ------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[UploadInfo, tuple[Part, ...]]]:
        """Every upload found in the bucket: its info.json and all its part objects, sorted.

        For `rebuild-index` after a loss of the state store. The parts are everything found
        (orphans included); `contiguous_parts` picks the run that is safe to commit. One pass over
        the listing, which S3 returns in key order, so the objects of one upload arrive together
        and only one upload's part list is held at a time. Keys that are not ours are skipped.
        """
        current: str | None = None
        has_info = False
        parts: list[Part] = []
        for upload_id, name, size in self._list_upload_objects():
            if upload_id != current:
                if current is not None and has_info:
                    yield from self._scanned(current, parts)
                current, has_info, parts = upload_id, False, []
            if name == INFO_NAME:
                has_info = True
            else:
                parts.append(Part(int(name), size))
        if current is not None and has_info:
            yield from self._scanned(current, parts)

    def _list_upload_objects(self) -> Iterator[tuple[str, str, int]]:
        """(upload id, object name, size) of every object that looks like one of ours."""
        prefix_length = len(self.prefix)
        listing = iter(self._call("list bucket", lambda: self._list(self.prefix)))
        while True:
            obj = self._call("list bucket", lambda: next(listing, None))
            if obj is None:
                return
            key = obj.object_name or ""
            upload_id, slash, name = key[prefix_length:].partition("/")
            if not slash or not is_upload_id(upload_id):
                continue
            if name == INFO_NAME or _PART_NAME.fullmatch(name):
                yield upload_id, name, obj.size or 0

    def _list(self, prefix: str) -> Iterator[Any]:
        return self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)

    def _scanned(
        self, upload_id: str, parts: list[Part]
    ) -> Iterator[tuple[UploadInfo, tuple[Part, ...]]]:
        try:
            info = self.load_info(upload_id)
        except BackendUnavailable:
            log.warning("skipping upload %s: its info.json cannot be read", upload_id)
            return
        if info.id != upload_id:
            log.warning("skipping upload %s: its info.json names %s", upload_id, info.id)
            return
        yield info, tuple(sorted(parts, key=lambda p: p.start))

    # -- helpers ------------------------------------------------------------------------------

    def _get_small(self, key: str) -> bytes:
        """A whole small object (info.json), read at once."""

        def fetch() -> bytes:
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call("read info", fetch)

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        """Run one client operation, translating its failures at this boundary."""
        try:
            result = operation()
        except CLIENT_ERRORS as exc:
            raise _unavailable(action, exc) from None
        backend_status.ok(backend_status.STORAGE)
        return result


def _close_when_done(upcoming: Future[Any]) -> None:
    """Close a read-ahead response nobody will read: now if it is there, else when it arrives."""

    def close(done: Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        response = done.result()
        if response is not None:
            response.close()
            response.release_conn()

    if not upcoming.cancel():
        upcoming.add_done_callback(close)


def describe(exc: BaseException) -> str:
    """A short, single-line reason for a client exception (no traceback, no request dump)."""
    if isinstance(exc, S3Error):
        text = f"{exc.code}: {exc.message}" if exc.message else str(exc.code)
        return " ".join(text.split())[:200]
    if isinstance(exc, InvalidResponseError):
        # Something answered that is not S3 (a web server, a proxy's error page).
        match = _RESPONSE_CODE.search(str(exc))
        return f"not an S3 API (HTTP {match.group(1) if match else '?'})"
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        return describe(exc.reason)
    if isinstance(exc, NewConnectionError | ConnectionRefusedError):
        text = str(exc).lower()
        if isinstance(exc, ConnectionRefusedError) or "refused" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "host name not found"
        return "cannot connect"
    if isinstance(exc, ConnectTimeoutError):
        return "connection timed out"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return "read timed out"
    if isinstance(exc, SSLError):
        return "TLS handshake failed"
    if isinstance(exc, ProtocolError):
        return "connection dropped"
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def _unavailable(action: str, exc: BaseException) -> BackendUnavailable:
    """Report a client failure (logged once per outage) and turn it into the catalogue's 503."""
    reason = describe(exc)
    backend_status.failed(backend_status.STORAGE, f"S3 {action} failed: {reason}")
    return BackendUnavailable(f"storage {action} failed: {reason}")


def _content_range_total(value: str | None) -> int | None:
    """The object size from a `Content-Range: bytes a-b/total` header, if there is one."""
    if not value:
        return None
    match = _CONTENT_RANGE_TOTAL.search(value)
    return int(match.group(1)) if match else None
