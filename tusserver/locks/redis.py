"""The per-upload lock, kept by the state store next to the upload it guards.

A lock is a key holding the holder's token (see `holder.py`), set only if absent, with a TTL
the holder's `LockKeeper` refreshes. The token is also the fencing token the commit script
checks. A request that finds the lock taken:
- breaks it at once if the token names a process on this host that no longer runs (a worker
  killed with -9), so a resume after a crash does not wait for the TTL;
- otherwise asks the holder to release (a client resuming while its old PATCH still hangs): the
  holder commits what it has and lets go within a fraction of a second;
- gives up with 423 after `wait` seconds.

A release that fails because the state store is down (Redis restarting) is retried in the
background until it succeeds, so a lock whose holder already finished does not outlive a short
outage by its whole TTL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from .. import metrics
from ..errors import TusError, UploadGone, UploadLocked, UploadNotFound
from ..models import UploadInfo
from ..state.base import LockScope, StateStore
from .holder import holder_is_dead, new_token

log = logging.getLogger(__name__)


class UploadLock:
    """A lock this process holds on one upload."""

    def __init__(
        self, manager: LockManager, upload_id: str, token: str, info: UploadInfo | None = None
    ):
        self.manager = manager
        self.upload_id = upload_id
        self.token = token
        self.info = info
        self.lost = False
        self.released = False

    def refresh(self) -> tuple[bool, bool]:
        """Extend the lock's lifetime: (still held, release requested)."""
        held, asked = self.manager.state.refresh_lock(
            self.upload_id, self.token, self.manager.ttl_ms
        )
        if not held:
            self.lost = True
        return held, asked

    def refreshed(self, answer: tuple[bool, bool]) -> tuple[bool, bool]:
        """Take the answer of a bulk refresh (`LockManager.refresh_many`) as this lock's own."""
        if not answer[0]:
            self.lost = True
        return answer

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            self.manager.state.unlock(self.upload_id, self.token)
        except TusError:
            self.manager.release_later(self.upload_id, self.token)
            raise


class LockManager:
    """Hands out upload locks kept in the state store."""

    def __init__(
        self,
        state: StateStore,
        ttl: float = 30.0,
        wait: float = 5.0,
        poll: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.state = state
        self.ttl_ms = int(ttl * 1000)
        self.wait = wait
        self.poll = poll
        self._sleep = sleep
        self._pending: set[tuple[str, str]] = set()
        self._pending_lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    def refresh_many(self, locks: list[UploadLock]) -> list[tuple[bool, bool]]:
        """Refresh many held locks in one round trip: (still held, release requested) each.

        The answers are not applied to the locks: the caller does that (`UploadLock.refreshed`)
        only for writes still running, since a write that has just committed released its lock.

        The keeper calls this once per tick for every running write of the process: with
        thousands of slow uploads per worker, one round trip each, one after the other, would
        take longer than a lock lives on a busy machine.
        """
        pairs = [(lock.upload_id, lock.token) for lock in locks]
        return self.state.refresh_locks(pairs, self.ttl_ms)

    def release_later(self, upload_id: str, token: str, every: float = 0.1) -> None:
        """Keep trying to release a lock whose release failed, until the store answers."""
        with self._pending_lock:
            self._pending.add((upload_id, token))
            if self._retrier is not None and self._retrier.is_alive():
                return
            self._retrier = threading.Thread(
                target=self._retry_releases, args=(every,), name="lock-release", daemon=True
            )
            self._retrier.start()

    def _retry_releases(self, every: float) -> None:
        while True:
            time.sleep(every)
            with self._pending_lock:
                pending = list(self._pending)
                if not pending:
                    self._retrier = None
                    return
            for upload_id, token in pending:
                with contextlib.suppress(TusError):
                    self.state.unlock(upload_id, token)
                    with self._pending_lock:
                        self._pending.discard((upload_id, token))

    def acquire(
        self,
        upload_id: str,
        wait: float | None = None,
        ask_release: bool = True,
        read: bool = False,
        with_parts: bool = False,
        before_asking: Callable[[], None] | None = None,
        scope: LockScope | None = None,
    ) -> UploadLock:
        """Take the lock, asking a live holder to release it; UploadLocked (423) if it won't.

        The release request carries this request's token, so a request that gives up withdraws
        only its own request and never leaves one behind for the next, unrelated writer.
        `ask_release=False` (the expiry reaper) never disturbs a running write.
        `before_asking` runs once before a holder is asked and may refuse by raising (only the
        upload's owner may make a running write let go).
        """
        wait = self.wait if wait is None else wait
        token = new_token()
        deadline = time.monotonic() + wait
        asked = False
        try:
            while True:
                attempt = self.state.try_lock(
                    upload_id, token, self.ttl_ms, read, with_parts, scope=scope
                )
                if not attempt.exists:
                    raise UploadGone() if attempt.gone else UploadNotFound()
                if attempt.acquired:
                    if asked:
                        asked = False
                        self.state.withdraw_release(upload_id, token)
                    return UploadLock(self, upload_id, token, attempt.info)
                holder = attempt.holder or ""
                if holder and holder_is_dead(holder):
                    if self.state.unlock(upload_id, holder):
                        log.warning("broke the lock of %s held by a dead process", upload_id)
                        metrics.LOCKS_BROKEN.inc()
                    continue
                if ask_release and not asked:
                    if before_asking is not None:
                        before_asking()
                    ask_ms = int(max(wait, 1.0) * 1000) + 1000
                    self.state.request_release(upload_id, token, ask_ms)
                    asked = True
                    metrics.LOCK_WAITS.inc()
                if time.monotonic() >= deadline:
                    metrics.LOCKS_REFUSED.inc()
                    raise UploadLocked()
                self._sleep(self.poll)
        finally:
            if asked:
                with contextlib.suppress(Exception):
                    self.state.withdraw_release(upload_id, token)

    @contextlib.contextmanager
    def hold(
        self,
        upload_id: str,
        wait: float | None = None,
        read: bool = False,
        with_parts: bool = False,
        before_asking: Callable[[], None] | None = None,
        scope: LockScope | None = None,
    ) -> Iterator[UploadLock]:
        """Hold the lock for the duration of a `with` block; released even on errors."""
        lock = self.acquire(
            upload_id,
            wait,
            read=read,
            with_parts=with_parts,
            before_asking=before_asking,
            scope=scope,
        )
        try:
            yield lock
        finally:
            with contextlib.suppress(Exception):
                lock.release()
