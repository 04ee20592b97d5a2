"""The lock contract: one writer per upload, and a way for a newcomer to ask the holder to go.

As in tus-node-server's Locker, asking the holder to release is part of the contract rather
than a side channel: `acquire(..., ask_release=True)` asks, and the holder's `LockKeeper` sees
the request through `Lock.refresh`. The service depends on these protocols only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from ..models import UploadInfo
from ..state.base import LockScope


class Lock(Protocol):
    """A lock this process holds on one upload."""

    upload_id: str
    token: str
    """The fencing token: a commit succeeds only while this token holds the lock."""
    info: UploadInfo | None
    """The upload's state read in the same step as the lock was taken (when asked for)."""
    lost: bool
    """Set once the holder learns the lock is no longer its own; it must then not commit."""
    released: bool

    def refresh(self) -> tuple[bool, bool]:
        """Extend the lock: (still held, a newcomer asked for it)."""
        ...

    def refreshed(self, answer: tuple[bool, bool]) -> tuple[bool, bool]:
        """Take a bulk refresh's (still held, asked) answer as this lock's own."""
        ...

    def release(self) -> None: ...


class Locker(Protocol):
    """Hands out per-upload locks."""

    ttl_ms: int

    def acquire(
        self,
        upload_id: str,
        wait: float | None = None,
        ask_release: bool = True,
        read: bool = False,
        with_parts: bool = False,
        before_asking: Callable[[], None] | None = None,
        scope: LockScope | None = None,
    ) -> Lock:
        """Take the lock (reading the upload's state with it when `read`).

        Raises UploadNotFound/UploadGone for an upload that does not exist, or (with a `scope`)
        belongs to someone else (no lock is taken),
        UploadLocked (423) when a live holder does not let go within `wait` seconds.
        """
        ...

    def hold(
        self,
        upload_id: str,
        wait: float | None = None,
        read: bool = False,
        with_parts: bool = False,
        before_asking: Callable[[], None] | None = None,
        scope: LockScope | None = None,
    ) -> AbstractContextManager[Lock]: ...
