"""The tus 1.0.0 header codec: parsing and formatting of every protocol header, and nothing else.

Request headers are untrusted input, and each one has a precise grammar in the tus specification
(core, creation, creation-defer-length, checksum, concatenation, expiration). This module is the
single place where those grammars are enforced, so that views and the service only ever handle
validated Python values. It is pure: no Flask, no I/O, no state. Malformed input raises the
matching `tusserver.errors` class with a message naming the header and what is wrong with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from werkzeug.http import http_date as _werkzeug_http_date

from .errors import (
    HeaderTooLarge,
    InvalidConcat,
    InvalidHeader,
    InvalidMetadata,
    PreconditionFailed,
    UnsupportedChecksumAlgorithm,
)

TUS_VERSION = "1.0.0"
SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0.0",)
CHECKSUM_ALGORITHMS: tuple[str, ...] = ("sha1", "sha256", "md5")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_INT = 2**63 - 1

UPLOAD_ID_PATTERN = re.compile(r"[0-9a-f]{32}")

_OWS = " \t"  # HTTP optional whitespace, stripped around header values and list elements
_LENGTH_PATTERN = re.compile(r"[0-9]{1,19}")  # [0-9], not \d: \d matches non-ASCII digits
_ALGORITHM_PATTERN = re.compile(r"[A-Za-z0-9-]+")
_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "md5": 16}
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _quote(value: str, limit: int = 64) -> str:
    """Render an untrusted string for an error message: truncated, ASCII-only, escaped."""
    return ascii(value[:limit]) + ("..." if len(value) > limit else "")


def check_tus_resumable(value: str | None) -> None:
    """Require a supported Tus-Resumable request header, else raise 412 Precondition Failed."""
    headers = {"Tus-Version": ",".join(SUPPORTED_VERSIONS)}
    if value is None:
        raise PreconditionFailed("Tus-Resumable header is required", headers=headers)
    if value.strip(_OWS) not in SUPPORTED_VERSIONS:
        raise PreconditionFailed(
            f"Tus-Resumable version {_quote(value)} is not supported; "
            f"supported: {', '.join(SUPPORTED_VERSIONS)}",
            headers=headers,
        )


def parse_length(name: str, value: str) -> int:
    """Parse a non-negative decimal integer header such as Upload-Length or Upload-Offset."""
    digits = value.strip(_OWS)
    if not _LENGTH_PATTERN.fullmatch(digits) or int(digits) > MAX_INT:
        raise InvalidHeader(f"{name} must be a non-negative integer")
    return int(digits)


def parse_defer_length(value: str) -> bool:
    """Parse Upload-Defer-Length, whose only valid value is "1"."""
    if value.strip(_OWS) != "1":
        raise InvalidHeader("Upload-Defer-Length must be 1")
    return True


@dataclass(frozen=True)
class Checksum:
    """A parsed Upload-Checksum header: a supported algorithm and the expected raw digest."""

    algorithm: str
    digest: bytes

    def hasher(self) -> hashlib._Hash:
        """Return a fresh hashlib object for this checksum's algorithm."""
        return hashlib.new(self.algorithm, usedforsecurity=False)


def _strict_b64decode(value: str) -> bytes:
    """Decode canonical standard base64 (padded, no whitespace), else raise ValueError."""
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc
    # validate=True still accepts non-canonical input (non-zero unused bits, e.g. "YR==" for "a");
    # requiring the canonical encoding makes decoding one-to-one.
    if base64.b64encode(decoded).decode("ascii") != value:
        raise ValueError("not canonical base64")
    return decoded


def parse_checksum(value: str) -> Checksum:
    """Parse Upload-Checksum: "<algorithm> <base64 digest>" separated by exactly one space."""
    parts = value.strip(_OWS).split(" ")
    if len(parts) != 2 or not _ALGORITHM_PATTERN.fullmatch(parts[0]) or not parts[1]:
        raise InvalidHeader(
            "Upload-Checksum must be an algorithm and a base64 digest separated by one space"
        )
    algorithm, encoded = parts[0].lower(), parts[1]
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UnsupportedChecksumAlgorithm(
            f"Upload-Checksum algorithm {_quote(parts[0])} is not supported; "
            f"supported: {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = _strict_b64decode(encoded)
    except ValueError:
        raise InvalidHeader("Upload-Checksum digest is not valid base64") from None
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise InvalidHeader(
            f"Upload-Checksum {algorithm} digest must be {_DIGEST_SIZES[algorithm]} bytes, "
            f"got {len(digest)}"
        )
    return Checksum(algorithm, digest)


def _is_metadata_key(key: str) -> bool:
    """Tell whether key is non-empty printable ASCII without space or comma."""
    return bool(_PRINTABLE_ASCII.fullmatch(key)) and "," not in key


def parse_metadata(value: str, max_size: int = 4096) -> dict[str, str]:
    """Parse Upload-Metadata into text values (see `parse_metadata_values`)."""
    return parse_metadata_values(value, max_size)[0]


def parse_metadata_values(
    value: str, max_size: int = 4096
) -> tuple[dict[str, str], dict[str, str]]:
    """Parse Upload-Metadata: comma-separated "key base64value" pairs or lone keys.

    Returns the values as text and, for the values that are not UTF-8, the base64 exactly as
    sent. Values may be any bytes (the spec only asks for base64, and HEAD must return each one
    as it was sent), so bytes that are not UTF-8 are kept: decoded for display with U+FFFD
    replacement characters, and returned to tus clients from the base64 they sent.
    """
    if len(value) > max_size:
        raise HeaderTooLarge(f"Upload-Metadata is longer than {max_size} characters")
    if not value.strip(_OWS):
        return {}, {}
    metadata: dict[str, str] = {}
    binary: dict[str, str] = {}
    previous = None
    for element in (part.strip(_OWS) for part in value.split(",")):
        if not element:
            where = f"after key {_quote(previous)}" if previous is not None else "at the start"
            raise InvalidMetadata(f"Upload-Metadata has an empty element {where}")
        key, _, encoded = element.partition(" ")  # a lone key has no space, hence value ""
        if not _is_metadata_key(key):
            raise InvalidMetadata(
                f"Upload-Metadata key {_quote(key)} must be non-empty printable ASCII "
                "without spaces or commas"
            )
        if " " in encoded:
            raise InvalidMetadata(
                f"Upload-Metadata key {_quote(key)} must be followed by exactly one space "
                "and a base64 value"
            )
        if key in metadata:
            raise InvalidMetadata(f"Upload-Metadata key {_quote(key)} appears more than once")
        try:
            raw = _strict_b64decode(encoded)
        except ValueError:
            raise InvalidMetadata(
                f"Upload-Metadata value of key {_quote(key)} is not valid base64"
            ) from None
        try:
            metadata[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            metadata[key] = raw.decode("utf-8", errors="replace")
            binary[key] = encoded
        previous = key
    return metadata, binary


def encode_metadata(metadata: Mapping[str, str], binary: Mapping[str, str] | None = None) -> str:
    """Format metadata as an Upload-Metadata header; raises ValueError on an invalid key.

    `binary` holds the base64 of values that are not UTF-8, as the client sent it: those are
    returned as sent instead of re-encoding their display text.
    """
    binary = binary or {}
    elements = []
    for key, value in metadata.items():
        if not _is_metadata_key(key):
            raise ValueError(f"invalid Upload-Metadata key: {key!r}")
        if key in binary:
            elements.append(f"{key} {binary[key]}")
        elif value == "":
            elements.append(key)
        else:
            elements.append(f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}")
    return ",".join(elements)


@dataclass(frozen=True)
class ConcatRequest:
    """A parsed Upload-Concat header: a partial upload, or a final one listing its partials."""

    kind: str
    urls: tuple[str, ...] = ()


def parse_concat(value: str) -> ConcatRequest:
    """Parse Upload-Concat: "partial" or "final;<url> <url> ..."."""
    value = value.strip(_OWS)
    if value == "partial":
        return ConcatRequest("partial", ())
    kind, semicolon, rest = value.partition(";")
    if kind != "final" or not semicolon:
        raise InvalidConcat('Upload-Concat must be "partial" or "final;" followed by upload URLs')
    urls = tuple(url for url in rest.split(" ") if url)
    if not urls:
        raise InvalidConcat('Upload-Concat "final;" must list at least one upload URL')
    return ConcatRequest("final", urls)


def format_concat(kind: str, urls: Sequence[str] = ()) -> str:
    """Format an Upload-Concat response header; raises ValueError on an impossible combination."""
    if kind == "partial" and not urls:
        return "partial"
    if kind == "final" and urls:
        return "final;" + " ".join(urls)
    raise ValueError(f"cannot format Upload-Concat for kind {kind!r} with {len(urls)} URL(s)")


def is_upload_id(value: str) -> bool:
    """Tell whether value is an upload id (32 lower-case hex digits, as uuid4().hex)."""
    return UPLOAD_ID_PATTERN.fullmatch(value) is not None


def upload_id_from_url(url: str, base_path: str = "/files/") -> str:
    """Extract the upload id from an absolute or relative upload URL "<base_path><id>[/]"."""
    shown = url[:200].replace("\r", "").replace("\n", "")
    error = InvalidConcat(f"not an upload URL of this server: {shown!r}")
    # urlsplit silently drops tabs and newlines and strips leading whitespace; refuse them first.
    if not _PRINTABLE_ASCII.fullmatch(url) or "?" in url or "#" in url:
        raise error
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host ("Invalid IPv6 URL")
        raise error from None
    if parts.scheme not in ("", "http", "https") or (parts.scheme and not parts.netloc):
        raise error
    prefix = base_path if base_path.endswith("/") else base_path + "/"
    if not parts.path.startswith(prefix):
        raise error
    upload_id = parts.path[len(prefix) :]
    upload_id = upload_id[:-1] if upload_id.endswith("/") else upload_id
    if not is_upload_id(upload_id):
        raise error
    return upload_id


def http_date(timestamp: float) -> str:
    """Format a Unix timestamp as an RFC 7231 IMF-fixdate, as used by Upload-Expires."""
    return _werkzeug_http_date(timestamp)


def safe_header_value(value: str, limit: int = 1024) -> str:
    """Make an untrusted string safe to echo in a header: drop control characters, truncate."""
    cleaned = "".join(ch for ch in value if unicodedata.category(ch) != "Cc")
    return cleaned[:limit]
