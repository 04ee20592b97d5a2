"""One write to an upload as a transaction: attempt -> write -> commit, or abort.

A `WriteAttempt` runs while the service holds the upload's lock. It names the attempt (so the
data store keeps this attempt's objects apart from every other attempt's), streams the body into
the store, checks what must be checked (length, checksums, a representation digest, the lock),
and then either commits the durable bytes with the lock token as fencing token, or aborts and
removes only its own objects. The rules it enforces are the invariants in docs/architecture.md.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .body import BodyReader
from .errors import (
    BackendUnavailable,
    ChecksumMismatch,
    InconsistentLength,
    LockLost,
    OffsetMismatch,
    TooLarge,
    TusError,
    UploadNotFound,
)
from .locks.base import Lock
from .models import UploadInfo, WriteResult, expiry
from .protocol import Checksum
from .state.base import StateStore
from .storage.base import DataStore

log = logging.getLogger(__name__)

Verify = Callable[[UploadInfo, WriteResult], dict[str, str]]
"""Checks the whole upload a write completes (Repr-Digest); returns the digests to record."""


class WriteAttempt:
    """Write one request body at `info.offset` under `lock`; commit or abort."""

    def __init__(
        self,
        state: StateStore,
        store: DataStore,
        lock: Lock,
        info: UploadInfo,
        clock: Callable[[], float],
        expire_after: float,
        declares_length: bool = False,
        completes: bool = False,
        verify: Verify | None = None,
        on_length_known: Callable[[UploadInfo], None] | None = None,
    ):
        self.state = state
        self.store = store
        self.lock = lock
        self.info = info
        self.clock = clock
        self.expire_after = expire_after
        self.declares_length = declares_length
        self.completes = completes
        """The body ends the upload (the IETF draft's `Upload-Complete: ?1`)."""
        self.verify = verify
        self.on_length_known = on_length_known
        self.attempt = secrets.token_hex(8)
        self.result: WriteResult | None = None
        self.body: BodyReader | None = None
        self.checks: tuple[Checksum, ...] = ()
        self.hashers: list[Any] = []

    def write(self, body: BodyReader, checks: tuple[Checksum, ...] = ()) -> None:
        """Stream the body into the data store (while the lock keeper watches the body)."""
        self.body, self.checks = body, checks
        self.hashers = [check.hasher() for check in checks]
        chunks: Iterable[bytes] = _hashing(body, self.hashers) if self.hashers else body
        self.result = self.store.write(self.info, chunks, self.attempt)

    def finish(self) -> tuple[UploadInfo, bool]:
        """Check and commit: (the upload after the commit, whether it just completed).

        Raises the reason when nothing was committed. When the store failed after a durable
        prefix, that prefix is committed first (the client resumes after it), then the
        failure is raised.
        """
        body = self.body
        result = self.result or WriteResult(0)
        assert body is not None, "write() first"
        if body.overflow:
            self.abort()
            raise TooLarge(f"the body goes past the upload's length ({self.info.length})")
        if self.checks:
            if not body.complete or result.failure is not None:
                self.abort()
                raise result.failure or ChecksumMismatch(
                    "the body was cut short, so its checksum cannot match"
                )
            for check, hasher in zip(self.checks, self.hashers, strict=True):
                if not hmac.compare_digest(hasher.digest(), check.digest):
                    self.abort()
                    raise ChecksumMismatch(f"the body does not match its {check.algorithm} digest")
        if result.failure is not None:
            return self._commit_prefix(result.failure)
        end = self.info.offset + result.bytes_written
        if self.completes and body.complete and self.info.length != end:
            if self.info.length is not None:
                self.abort()
                raise InconsistentLength(
                    f"the upload ends at {end} bytes, but its length is {self.info.length}"
                )
            self.info = self.info.evolve(length=end)
            self.declares_length = True
            if self.on_length_known is not None:
                self._guarded(lambda: self.on_length_known(self.info))  # type: ignore[misc]
        if self.declares_length:
            # The S3 store's info.json is all `rebuild-index` has to restore an upload from:
            # record a newly declared length there before the state commit, or a rebuilt index
            # leaves a deferred-length upload without its length (incomplete for ever).
            self._guarded(lambda: self.store.save_info(self.info))
        if result.bytes_written == 0 and not self.declares_length:
            return self.info, False
        digests: dict[str, str] = {}
        if self.verify is not None:
            digests = self._guarded(lambda: self.verify(self.info, result))  # type: ignore[misc]
        committed, done = self.commit()
        if digests:
            self.state.set_digests(committed, digests)
            committed = committed.evolve(digests=digests)
        return committed, done

    def _guarded(self, step: Callable[[], Any]) -> Any:
        """Run a check or side step; if it fails, abort the attempt and re-raise."""
        try:
            return step()
        except BaseException:
            self.abort()
            raise

    def _commit_prefix(self, failure: Exception) -> tuple[UploadInfo, bool]:
        """Commit the acknowledged parts of a write the backend cut short, then fail."""
        if self.declares_length or self.completes:
            self.abort()
            raise failure
        try:
            self.commit()
        except TusError:
            log.warning("could not commit the stored prefix of %s", self.info.id)
        raise failure

    def commit(self) -> tuple[UploadInfo, bool]:
        """Advance the offset by what was written, fenced by the lock token, releasing the lock."""
        result = self.result or WriteResult(0)
        if self.lock.lost:
            self.abort()
            raise LockLost()
        now = self.clock()
        new_offset = self.info.offset + result.bytes_written
        done = self.info.length is not None and new_offset >= self.info.length
        after = self.info.evolve(offset=new_offset)
        try:
            committed = self.state.commit_write(
                self.info,
                new_offset,
                result.parts,
                self.lock.token,
                updated=now,
                expires=expiry(after, now, self.expire_after),
                completed=now if done else None,
                length=self.info.length if self.declares_length else None,
                release=True,
            )
        except (OffsetMismatch, UploadNotFound, LockLost):
            # A definite "no" from the state store: these bytes will never count. On any other
            # failure (Redis timed out) the commit may have happened, so nothing is removed:
            # bytes past a committed offset are harmless, deleting committed ones is not.
            self.abort()
            raise
        self.lock.released = True
        return committed, done

    def abort(self) -> None:
        """Remove what this attempt stored (only its own objects; best effort)."""
        if self.result is None or not self.result.bytes_written:
            return
        try:
            self.store.discard(self.info, self.result, exclusive=self._still_holding())
        except BackendUnavailable:
            log.warning("could not remove the aborted write of %s", self.info.id)

    def _still_holding(self) -> bool:
        """True if the lock is still ours (refreshed now, so it lasts a full TTL from here)."""
        if self.lock.lost or self.lock.released:
            return False
        try:
            return self.lock.refresh()[0]
        except TusError:
            return False


def _hashing(chunks: Iterable[bytes], hashers: list[Any]) -> Iterator[bytes]:
    """Pass chunks through, feeding each to every checksum hasher on the way."""
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)
        yield chunk
