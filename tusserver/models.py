"""Plain data the layers pass to each other: an upload's state and the parts it is stored in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace


def new_upload_id() -> str:
    """A server-generated id: 32 lower-case hex digits, never derived from client input."""
    return uuid.uuid4().hex


@dataclass(frozen=True, order=True)
class Part:
    """A stored byte range of an upload: `size` bytes starting at `start` (S3 part objects).

    `attempt` names the write attempt that stored it, so two attempts writing at the same offset
    (a stale writer and the current one) never share an object: each attempt can delete its own
    parts without touching what another attempt committed. Empty for parts stored before
    attempts had names.
    """

    start: int
    size: int
    attempt: str = ""

    @property
    def end(self) -> int:
        """The offset just past the part's last byte."""
        return self.start + self.size


@dataclass(frozen=True)
class UploadInfo:
    """Everything the server knows about one upload, as kept in the state store.

    `length` is None while the client has deferred it (creation-defer-length). `concat` is
    "partial", "final" or None; a final upload lists its partial uploads in `members` and owns no
    bytes of its own. `parts` is only filled for stores that keep bytes in several objects.
    `owner` is the user that created it; `grant` the id of the upload grant it was made with.
    Times are Unix timestamps (seconds, float).

    `metadata` holds the values as text for display (bytes that are not UTF-8 decoded with
    replacement characters); `metadata_binary` keeps, for exactly those values, the base64 the
    client sent, so HEAD returns every value as sent. `digests` maps RFC 9530 algorithm names to
    the base64 digest of the whole upload: announced with Repr-Digest (verified when the upload
    completes), or "" while only asked for with Want-Repr-Digest (computed when it completes).
    """

    id: str
    length: int | None
    offset: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    expires: float | None = None
    completed: float | None = None
    owner: str | None = None
    concat: str | None = None
    members: tuple[str, ...] = ()
    parts: tuple[Part, ...] = ()
    grant: str | None = None
    metadata_binary: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def is_complete(self) -> bool:
        """All declared bytes have arrived."""
        return self.length is not None and self.offset >= self.length

    @property
    def is_partial(self) -> bool:
        return self.concat == "partial"

    @property
    def is_final(self) -> bool:
        return self.concat == "final"

    @property
    def filename(self) -> str:
        """The client's name for the file (metadata `filename` or `name`), or ''."""
        return self.metadata.get("filename") or self.metadata.get("name") or ""

    @property
    def filetype(self) -> str:
        """The client's claimed media type (metadata `filetype`, `type` or `contentType`), or ''."""
        for key in ("filetype", "type", "contentType", "content-type"):
            if self.metadata.get(key):
                return self.metadata[key]
        return ""

    def is_expired(self, now: float) -> bool:
        """Past its expiry time. `expires` is None for what never expires (see `expiry`)."""
        return self.expires is not None and self.expires <= now

    def evolve(self, **changes: object) -> UploadInfo:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def expiry(info: UploadInfo, now: float, expire_after: float) -> float | None:
    """When `info` expires if nothing happens to it from `now` on: the one expiry rule.

    - an incomplete upload expires `expire_after` seconds after its last change;
    - a complete upload never does, except a partial upload (concatenation): nobody downloads a
      partial on its own, so one that no final upload uses expires like an incomplete upload;
    - a partial upload a final upload uses does not expire (the state store clears its expiry
      when the final is created; removing the last final removes the partial with it).
    """
    if info.is_complete and not info.is_partial:
        return None
    return now + expire_after


@dataclass(frozen=True)
class WriteResult:
    """What a data store wrote for one attempt: how many bytes, in which new parts.

    `failure` is set when the backend failed after part of the body was stored durably (an S3
    outage after some PUTs were acknowledged): the service commits that acknowledged prefix, so
    the client resumes after it, and then reports the failure.
    """

    bytes_written: int
    parts: tuple[Part, ...] = ()
    failure: Exception | None = None
    spliced: int = 0
    """How many of the bytes went socket -> file by splice(2) (the local store; metrics)."""
