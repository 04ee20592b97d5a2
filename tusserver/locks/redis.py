"""The per-upload lock: one writer per upload, and a way for a newcomer to ask the holder to leave.

A lock is `SET lock:<id> <token> NX PX <ttl>`; only the holder's token can refresh or delete it.
A request that finds the lock taken sets `lock:<id>:release` and polls: the holder (through the
`LockKeeper`) sees the request, commits what it has received and lets go, so a client resuming
after a dropped connection gets in within a second or two instead of waiting for a timeout.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator

import redis

from .. import metrics
from ..errors import UploadLocked
from ..state.redis import translate_errors

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class UploadLock:
    """A lock this process holds on one upload."""

    def __init__(self, manager: LockManager, upload_id: str, token: str):
        self.manager = manager
        self.upload_id = upload_id
        self.token = token
        self.key = manager.lock_key(upload_id)
        self.release_key = manager.release_key(upload_id)

    def refresh(self) -> bool:
        """Extend the lock's lifetime; False if it was lost (expired and taken by another)."""
        with translate_errors():
            return bool(
                self.manager._refresh(keys=[self.key], args=[self.token, self.manager.ttl_ms])
            )

    def release_requested(self) -> bool:
        with translate_errors():
            return bool(self.manager.client.exists(self.release_key))

    def release(self) -> None:
        with translate_errors():
            self.manager._release(keys=[self.key], args=[self.token])


class LockManager:
    """Hands out upload locks backed by Redis."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "tusserver:",
        ttl: float = 30.0,
        wait: float = 5.0,
        poll: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.wait = wait
        self.poll = poll
        self._sleep = sleep
        self._release = client.register_script(_RELEASE)
        self._refresh = client.register_script(_REFRESH)
        self._withdraw = client.register_script(_RELEASE)  # same script: delete if ours

    def release_requested_many(self, locks: list[UploadLock]) -> list[bool]:
        """For each lock, whether another request asked for it (one MGET for all)."""
        with translate_errors():
            values = self.client.mget([lock.release_key for lock in locks])
        return [value is not None for value in values]

    def lock_key(self, upload_id: str) -> str:
        return f"{self.prefix}lock:{upload_id}"

    def release_key(self, upload_id: str) -> str:
        return f"{self.prefix}lock:{upload_id}:release"

    def acquire(
        self, upload_id: str, wait: float | None = None, ask_release: bool = True
    ) -> UploadLock:
        """Take the lock, asking a current holder to release it; UploadLocked (423) if it won't.

        The release request carries this request's token, so a request that gives up withdraws
        only its own request and never leaves one behind for the next, unrelated writer.
        `ask_release=False` (the expiry reaper) never disturbs a running write.
        """
        wait = self.wait if wait is None else wait
        token = secrets.token_hex(16)
        key = self.lock_key(upload_id)
        deadline = time.monotonic() + wait
        asked = False
        with translate_errors():
            while True:
                if self.client.set(key, token, nx=True, px=self.ttl_ms):
                    if asked:
                        self._withdraw(keys=[self.release_key(upload_id)], args=[token])
                    return UploadLock(self, upload_id, token)
                if ask_release and not asked:
                    ask_ms = int(max(wait, 1.0) * 1000) + 1000
                    self.client.set(self.release_key(upload_id), token, px=ask_ms)
                    asked = True
                    metrics.LOCK_WAITS.inc()
                if time.monotonic() >= deadline:
                    if asked:
                        self._withdraw(keys=[self.release_key(upload_id)], args=[token])
                    metrics.LOCKS_REFUSED.inc()
                    raise UploadLocked()
                self._sleep(self.poll)

    @contextlib.contextmanager
    def hold(self, upload_id: str, wait: float | None = None) -> Iterator[UploadLock]:
        """Hold the lock for the duration of a `with` block; released even on errors."""
        lock = self.acquire(upload_id, wait)
        try:
            yield lock
        finally:
            with contextlib.suppress(Exception):
                lock.release()
