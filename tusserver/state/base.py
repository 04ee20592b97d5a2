"""The state store's contract: what the service needs from wherever upload state lives.

The service depends on this protocol, not on Redis. `RedisState` (state/redis.py) is the one
implementation; the contract tests in tests/contract/test_state.py hold it to this.
The lock primitives live here too: a commit is fenced by the writer's lock token, so the lock
and the upload's state must be changed by the same store in one atomic step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..models import Part, UploadInfo
from .catalog import CatalogQuery


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    uploads: list[UploadInfo]
    total: int


@dataclass(frozen=True)
class LockScope:
    """Whose uploads a lock attempt may take: those of `owner` (and of `grant`, when set).

    Checked in the same step as taking the lock, so a request for someone else's upload is a
    404 that never touches its lock (it cannot disturb, even for a moment, a running write).
    """

    owner: str
    grant: str | None = None


@dataclass(frozen=True)
class LockAttempt:
    """The answer to one attempt at taking an upload's lock (and reading its state with it).

    `acquired`: the lock is ours. `holder`: the current holder's token when it is not.
    `info`: the upload's state read in the same step (None when it does not exist; not read
    when the caller did not ask). `gone`: it does not exist but left a tombstone (410).
    """

    acquired: bool
    holder: str | None = None
    info: UploadInfo | None = None
    gone: bool = False
    exists: bool = True


class StateStore(Protocol):
    """Upload state: offsets, lengths, metadata, indexes, tombstones and the per-upload lock."""

    def ping(self) -> None: ...

    def get(self, upload_id: str, with_parts: bool = False) -> UploadInfo | None: ...

    def is_gone(self, upload_id: str) -> bool: ...

    def list(
        self,
        limit: int,
        offset: int = 0,
        owner: str | None = None,
        query: CatalogQuery | None = None,
    ) -> Page:
        """A page of listed uploads matching `query` (newest first without one), with the total."""
        ...

    def expired(self, now: float, limit: int = 100) -> list[str]: ...

    def referencing_finals(self, partial_id: str) -> set[str]: ...

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that have live state (for the orphan sweep)."""
        ...

    def create(self, info: UploadInfo) -> None:
        """Record a new upload (with its parts index, when it comes with stored parts)."""

    def create_final(self, info: UploadInfo, now: float) -> None:
        """Record a final upload and reference its partials, checking them in the same step.

        Raises `InvalidConcat` when a member is missing, expired, not partial or incomplete.
        """
        ...

    def restore(self, info: UploadInfo) -> None: ...

    def reindex(self, upload_id: str) -> bool:
        """Put an upload back in the indexes from its state; False if it has none."""
        ...

    def commit_write(
        self,
        info: UploadInfo,
        new_offset: int,
        new_parts: Iterable[Part],
        token: str,
        updated: float,
        expires: float | None,
        completed: float | None,
        length: int | None = None,
        release: bool = False,
    ) -> UploadInfo:
        """Advance the offset, fenced by the lock token; optionally release the lock with it.

        Raises `LockLost` when `token` no longer holds the lock, `OffsetMismatch` when the
        offset moved, `UploadNotFound` when the upload vanished.
        """
        ...

    def set_metadata(self, info: UploadInfo, metadata: dict[str, str], updated: float) -> None: ...

    def set_digests(self, info: UploadInfo, digests: dict[str, str]) -> None: ...

    def set_metadata_binary(self, info: UploadInfo, binary: dict[str, str]) -> None: ...

    def complete_final(
        self, info: UploadInfo, length: int, completed: float
    ) -> UploadInfo | None: ...

    def delete(self, info: UploadInfo, gone_ttl: int) -> list[str]:
        """Forget the upload, leave a tombstone; the member ids no final uses any more.

        Raises `Forbidden` for a partial upload that a final upload still uses.
        """
        ...

    # -- the per-upload lock ---------------------------------------------------------------
    def try_lock(
        self,
        upload_id: str,
        token: str,
        ttl_ms: int,
        read: bool = False,
        with_parts: bool = False,
        scope: LockScope | None = None,
    ) -> LockAttempt: ...

    def refresh_lock(self, upload_id: str, token: str, ttl_ms: int) -> tuple[bool, bool]:
        """Extend the lock: (still held, release requested by a newcomer)."""
        ...

    def refresh_locks(self, locks: list[tuple[str, str]], ttl_ms: int) -> list[tuple[bool, bool]]:
        """`refresh_lock` for many (upload id, token) pairs at once, in the same order.

        A lock with more than three quarters of `ttl_ms` left need not be extended (the keeper
        calls this several times a second; an extension is a write the store must persist)."""
        ...

    def unlock(self, upload_id: str, token: str) -> bool:
        """Delete the lock if `token` holds it (also used to break a dead holder's lock)."""
        ...

    def request_release(self, upload_id: str, token: str, ttl_ms: int) -> None: ...

    def withdraw_release(self, upload_id: str, token: str) -> None: ...

    def lease(self, name: str, holder: str, seconds: int) -> bool:
        """A named lease across all servers (the reaper's turn): True if `holder` got it."""
        ...
