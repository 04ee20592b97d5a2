"""Watches the writes in progress in this process: keeps their locks alive and ends them early.

One daemon thread per process (started on first use, so it is created after gunicorn forks)
checks every write a few times a second:
- refreshes its lock, so a PATCH of hours keeps its lock while a crashed holder's lock expires;
- interrupts it when another request asked for the lock, when no byte arrived for
  `read_timeout` seconds, or when the server shuts down. Interrupting ends the request body
  early (see `BodyReader.interrupt`), and the service commits what arrived.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .. import metrics
from ..errors import BackendUnavailable
from .redis import UploadLock

log = logging.getLogger(__name__)


class Interruptible(Protocol):
    """A request body that can be ended early and says how long it has been idle."""

    def interrupt(self, reason: str) -> None: ...

    @property
    def idle_seconds(self) -> float: ...


@dataclass(eq=False)
class _Watched:
    lock: UploadLock
    body: Interruptible
    refreshed: float = field(default_factory=time.monotonic)
    ended: bool = False


class LockKeeper:
    """Refreshes locks of running writes and interrupts writes that must stop."""

    def __init__(self, read_timeout: float, lock_ttl: float, interval: float = 0.2):
        self.read_timeout = read_timeout
        self.refresh_every = lock_ttl / 3
        self.interval = interval
        self._watched: set[_Watched] = set()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._shutting_down = False

    @contextlib.contextmanager
    def watch(self, lock: UploadLock, body: Interruptible) -> Iterator[None]:
        """Watch `body` (written under `lock`) for the duration of a `with` block."""
        entry = _Watched(lock, body)
        with self._mutex:
            if self._shutting_down:
                body.interrupt("server shutting down")
            self._watched.add(entry)
            self._ensure_thread()
        metrics.UPLOADS_ACTIVE.inc()
        try:
            yield
        finally:
            metrics.UPLOADS_ACTIVE.dec()
            with self._mutex:
                self._watched.discard(entry)

    @property
    def active(self) -> int:
        """How many writes are running in this process."""
        return len(self._watched)

    def shutdown(self) -> None:
        """Interrupt every running write so each commits what it has, and refuse to wait."""
        with self._mutex:
            self._shutting_down = True
            watched = list(self._watched)
        for entry in watched:
            entry.body.interrupt("server shutting down")

    def stop(self) -> None:
        """Stop the thread (tests, app teardown)."""
        self._stopping.set()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            with self._mutex:
                watched = list(self._watched)
            try:
                asked = self._release_requests(watched)
            except BackendUnavailable:
                asked = set()  # counted and logged once per outage where it happened
            except Exception:
                log.exception("lock keeper could not read release requests")
                asked = set()
            for entry in watched:
                try:
                    self._check(entry, entry in asked)
                except BackendUnavailable:
                    pass  # counted and logged once per outage where it happened (backend_status)
                except Exception:  # one bad check must not stop the watching of others
                    log.exception("lock keeper check failed for %s", entry.lock.upload_id)

    def _release_requests(self, watched: list[_Watched]) -> set[_Watched]:
        """The entries whose upload another request asked for: one Redis read for all of them.

        With thousands of slow uploads in one process (the gevent worker), one read per upload
        five times a second would cost more CPU than the uploads themselves.
        """
        running = [entry for entry in watched if not entry.ended]
        if not running:
            return set()
        flags = running[0].lock.manager.release_requested_many([e.lock for e in running])
        return {entry for entry, flag in zip(running, flags, strict=True) if flag}

    def _check(self, entry: _Watched, asked: bool = False) -> None:
        if entry.ended:  # interrupted already; the request is committing what it has
            return
        now = time.monotonic()
        if entry.body.idle_seconds >= self.read_timeout:
            entry.ended = True
            entry.body.interrupt(f"no data received for {self.read_timeout}s")
            return
        if asked:
            entry.ended = True
            metrics.LOCK_RELEASE_REQUESTS.inc()
            entry.body.interrupt("another request asked for the upload")
            return
        if now - entry.refreshed >= self.refresh_every:
            entry.refreshed = now
            if not entry.lock.refresh():
                entry.body.interrupt("lock lost")
