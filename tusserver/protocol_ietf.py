"""The codec of the IETF draft "Resumable Uploads for HTTP" and of RFC 9530 digest fields.

tus 1.0.0 became draft-ietf-httpbis-resumable-upload. Clients name the draft revision they speak
with `Upload-Draft-Interop-Version`; we serve interop version 6 (drafts -04 and -05: what
tus-js-client's `ietf-draft-05` and iOS 18's URLSession send) and version 8 (drafts -09 to -11).
Version 6 calls the lifetime limit `expires`, version 8 `max-age`; version 8 also defines the
`inconsistent-upload-length` problem type. Everything else this server uses is common to both.

The draft's fields are Structured Fields (RFC 9651), parsed and serialised with `http_sf`. This
module is pure, like `protocol.py`: it turns untrusted header values into Python values (raising
the catalogue's errors with a message naming the header) and renders response values. It holds no
rules about uploads; those are the service's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import http_sf

from .errors import InvalidHeader, UnsupportedInteropVersion
from .protocol import Checksum

INTEROP_HEADER = "Upload-Draft-Interop-Version"
INTEROP_VERSIONS: tuple[int, ...] = (6, 8)
PARTIAL_UPLOAD_TYPE = "application/partial-upload"
PROBLEM_TYPE_BASE = "https://iana.org/assignments/http-problem-types#"
PROBLEM_CONTENT_TYPE = "application/problem+json"
INTERIM_STATUS = "104 Upload Resumption Supported"

DIGEST_ALGORITHMS: dict[str, str] = {"sha-256": "sha256", "sha-512": "sha512"}
"""RFC 9530 algorithm names we verify, mapped to hashlib names (strongest last)."""
_DIGEST_SIZES = {"sha-256": 32, "sha-512": 64}
_MAX_HEADER = 8192


@dataclass(frozen=True)
class Draft:
    """One interop version of the draft and the few names that differ between versions."""

    interop: int

    @property
    def age_limit_key(self) -> str:
        """The `Upload-Limit` key of the remaining lifetime: renamed after draft -05."""
        return "expires" if self.interop < 7 else "max-age"

    @property
    def has_length_problem_type(self) -> bool:
        """`inconsistent-upload-length` exists from draft -06 (interop 7) on."""
        return self.interop >= 7


LATEST = Draft(max(INTEROP_VERSIONS))


def _text(name: str, value: str) -> bytes:
    if len(value) > _MAX_HEADER:
        raise InvalidHeader(f"{name} is too long")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidHeader(f"{name} must be ASCII") from None


def _item(name: str, value: str) -> Any:
    """The bare value of a Structured Field Item (parameters are allowed and ignored)."""
    try:
        bare, _params = http_sf.parse(_text(name, value), tltype="item")
    except http_sf.StructuredFieldError:
        raise InvalidHeader(f"{name} is not a valid structured field item") from None
    return bare


def _dictionary(name: str, value: str) -> dict[str, Any]:
    try:
        parsed = http_sf.parse(_text(name, value), tltype="dictionary")
    except http_sf.StructuredFieldError:
        raise InvalidHeader(f"{name} is not a valid structured field dictionary") from None
    return dict(parsed)


def parse_interop_version(value: str) -> Draft:
    """The draft a request follows; an unsupported version is refused naming those we serve."""
    served = " and ".join(str(v) for v in INTEROP_VERSIONS)
    try:
        version = _item(INTEROP_HEADER, value)
    except InvalidHeader:
        version = None
    if type(version) is not int or version not in INTEROP_VERSIONS:
        raise UnsupportedInteropVersion(
            f"{INTEROP_HEADER} {value[:32]!a} is not supported; this server serves "
            f"interop versions {served} (drafts -05 and -11 of draft-ietf-httpbis-resumable-"
            "upload) and tus 1.0.0 (Tus-Resumable)",
            headers={INTEROP_HEADER: str(LATEST.interop)},
        )
    return Draft(version)


def parse_boolean(name: str, value: str) -> bool:
    """A Structured Field Boolean such as `Upload-Complete: ?1`."""
    bare = _item(name, value)
    if type(bare) is not bool:
        raise InvalidHeader(f"{name} must be a structured field boolean, ?0 or ?1")
    return bare


def parse_integer(name: str, value: str) -> int:
    """A non-negative Structured Field Integer such as `Upload-Offset` or `Upload-Length`."""
    bare = _item(name, value)
    if type(bare) is not int or bare < 0:
        raise InvalidHeader(f"{name} must be a non-negative structured field integer")
    return bare


def format_boolean(value: bool) -> str:
    return "?1" if value else "?0"


@dataclass(frozen=True)
class Limits:
    """What `Upload-Limit` announces; None leaves a key out."""

    max_size: int | None = None
    min_size: int | None = None
    max_append_size: int | None = None
    max_age: int | None = None


def format_limits(limits: Limits, draft: Draft = LATEST) -> str:
    """Serialise `Upload-Limit` as a Structured Field Dictionary for the given draft."""
    members: dict[str, int] = {}
    if limits.max_size is not None:
        members["max-size"] = limits.max_size
    if limits.min_size is not None:
        members["min-size"] = limits.min_size
    if limits.max_append_size is not None:
        members["max-append-size"] = limits.max_append_size
    if limits.max_age is not None:
        members[draft.age_limit_key] = max(0, limits.max_age)
    return http_sf.ser(members) if members else ""


def parse_limits(value: str, draft: Draft = LATEST) -> Limits:
    """Parse `Upload-Limit` (used by tests and clients): unknown keys are ignored."""
    members = _dictionary("Upload-Limit", value)
    known = {"max-size", "min-size", "max-append-size", draft.age_limit_key}
    numbers: dict[str, int] = {}
    for key, (bare, _params) in members.items():
        if key not in known:
            continue
        if type(bare) is not int or bare < 0:
            raise InvalidHeader(f"Upload-Limit {key} must be a non-negative integer")
        numbers[key] = bare
    return Limits(
        numbers.get("max-size"),
        numbers.get("min-size"),
        numbers.get("max-append-size"),
        numbers.get(draft.age_limit_key),
    )


# -- RFC 9530 digests ------------------------------------------------------------------------


def parse_digests(name: str, value: str) -> dict[str, bytes]:
    """`Content-Digest` / `Repr-Digest`: the digests of algorithms we know, by RFC 9530 name.

    Algorithms we do not know are ignored (RFC 9530 section 2 lets a recipient do so); a known
    one whose value is not a byte sequence of the right size is an error.
    """
    digests: dict[str, bytes] = {}
    for algorithm, (bare, _params) in _dictionary(name, value).items():
        if algorithm not in DIGEST_ALGORITHMS:
            continue
        if not isinstance(bare, bytes):
            raise InvalidHeader(f"{name} {algorithm} must be a byte sequence (:base64:)")
        if len(bare) != _DIGEST_SIZES[algorithm]:
            raise InvalidHeader(
                f"{name} {algorithm} must be {_DIGEST_SIZES[algorithm]} bytes, got {len(bare)}"
            )
        digests[algorithm] = bare
    return digests


def digest_checksums(digests: Mapping[str, bytes]) -> tuple[Checksum, ...]:
    """The digests as the service's checksums (each is verified while the body streams)."""
    return tuple(Checksum(DIGEST_ALGORITHMS[name], value) for name, value in digests.items())


def format_digests(digests: Mapping[str, bytes]) -> str:
    """Serialise digests as a `Repr-Digest` / `Content-Digest` dictionary."""
    return http_sf.ser({name: value for name, value in digests.items()})


def parse_want_digest(name: str, value: str) -> tuple[str, ...]:
    """`Want-Repr-Digest`: the algorithms we know that the client accepts, preferred first.

    Each member's value is a preference from 0 (not acceptable) to 10; ties keep the client's
    order. A member that is not such an integer is an error.
    """
    wanted: list[tuple[int, int, str]] = []
    for position, (algorithm, (bare, _params)) in enumerate(_dictionary(name, value).items()):
        if type(bare) is not int or not 0 <= bare <= 10:
            raise InvalidHeader(f"{name} {algorithm} must be an integer from 0 to 10")
        if bare and algorithm in DIGEST_ALGORITHMS:
            wanted.append((-bare, position, algorithm))
    return tuple(algorithm for _, _, algorithm in sorted(wanted))


def encode_digest_values(digests: Mapping[str, bytes]) -> dict[str, str]:
    """Digests as base64 text, the form they are kept in with the upload's state."""
    return {name: base64.b64encode(value).decode("ascii") for name, value in digests.items()}


def decode_digest_values(values: Mapping[str, str]) -> dict[str, bytes]:
    """The inverse of `encode_digest_values` (state is trusted: written by us)."""
    return {name: base64.b64decode(value) for name, value in values.items() if value}


# -- RFC 9457 problem details ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A problem details document (RFC 9457)."""

    status: int
    title: str
    type: str = "about:blank"
    detail: str | None = None
    extensions: Mapping[str, int | str] | None = None

    def to_json(self) -> str:
        document: dict[str, object] = {"type": self.type, "title": self.title}
        document["status"] = self.status
        if self.detail:
            document["detail"] = self.detail
        document.update(self.extensions or {})
        return json.dumps(document)


def problem_type(name: str) -> str:
    """The registered URI of one of the draft's problem types."""
    return PROBLEM_TYPE_BASE + name


def mismatching_offset(expected: int, provided: int) -> Problem:
    return Problem(
        409,
        "offset from request does not match offset of resource",
        problem_type("mismatching-upload-offset"),
        extensions={"expected-offset": expected, "provided-offset": provided},
    )


def completed_upload(detail: str | None = None) -> Problem:
    return Problem(400, "upload is already completed", problem_type("completed-upload"), detail)


def inconsistent_length(draft: Draft, detail: str | None = None) -> Problem:
    """Interop 6 predates this problem type: it gets a plain 400 problem (RFC 9457 about:blank)."""
    if not draft.has_length_problem_type:
        return Problem(400, "Bad Request", detail=detail)
    kind = problem_type("inconsistent-upload-length")
    return Problem(400, "inconsistent length values for upload", kind, detail)


def format_interim(status: str, headers: Mapping[str, str]) -> bytes:
    """An HTTP/1.1 interim response, ready to write on the connection.

    Values are ours (URLs we built, integers), but a CR or LF would split the response, so any
    header carrying one is left out rather than sent.
    """
    lines = [f"HTTP/1.1 {status}"]
    for name, value in headers.items():
        if value and "\r" not in value and "\n" not in value:
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
