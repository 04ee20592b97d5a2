"""S3 client configuration: a fail-fast connection pool, the endpoint, the key layout, and the
translation of every `minio`/`urllib3` exception into `BackendUnavailable` (a 503).

This package is the only place that knows `minio` and `urllib3`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
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

from ... import backend_status
from ...errors import BackendUnavailable
from ...settings import Settings

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


class S3Connection:
    """The client, the bucket and the key layout every part of the S3 store shares."""

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

    # -- keys ---------------------------------------------------------------------------------

    def upload_prefix(self, upload_id: str) -> str:
        """The key prefix of every object of one upload (ends with '/')."""
        return f"{self.prefix}{upload_id}/"

    def part_key(self, upload_id: str, start: int, attempt: str = "") -> str:
        """The key of the part object that attempt `attempt` stored at absolute offset `start`."""
        key = f"{self.prefix}{upload_id}/{start:0{PART_NAME_DIGITS}d}"
        return f"{key}.{attempt}" if attempt else key

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
