"""Watches the writes in progress in this process: keeps their locks alive and ends them early.

One daemon thread per process (started on first use, so it is created after gunicorn forks)
checks every write a few times a second:
- refreshes its lock (one round trip that also tells whether a newcomer asked for the lock), so a
  PATCH of hours keeps its lock while a crashed holder's lock expires;
- interrupts it when another request asked for the lock, when no byte arrived for
  `read_timeout` seconds, or when the server shuts down. Interrupting ends the request body
  early (see `BodyReader.interrupt`), and the service commits what arrived;
- interrupts it when the lock was lost (it expired and someone else took it). The lock is then
  marked lost and the service does not commit: the commit would be refused anyway, because the
  lock token is the fencing token the commit script checks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .. import metrics
from ..errors import BackendUnavailable
from .base import Lock

log = logging.getLogger(__name__)

BUSY_WRITES = 200
"""Up to this many running writes per process the keeper checks every `interval`; beyond it
the interval grows in proportion (see `LockKeeper.tick`), so it checks at most about a thousand
locks a second."""

MAX_INTERVAL = 1.0
"""The longest time between two checks, however many writes run (far below any lock TTL)."""


class Interruptible(Protocol):
    """A request body that can be ended early and says how long it has been idle."""

    def interrupt(self, reason: str) -> None: ...

    @property
    def idle_seconds(self) -> float: ...


@dataclass(eq=False)
class _Watched:
    lock: Lock
    body: Interruptible
    ended: bool = False
    done: bool = False
    """Set when the watched write left `watch()`: from then on nothing may touch its body (the
    connection may already carry the next request), which `mutex` guarantees."""
    mutex: threading.Lock = field(default_factory=threading.Lock)


class LockKeeper:
    """Refreshes locks of running writes and interrupts writes that must stop."""

    def __init__(self, read_timeout: float, interval: float = 0.2):
        self.read_timeout = read_timeout
        self.interval = interval
        self._watched: set[_Watched] = set()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._shutting_down = False

    @contextlib.contextmanager
    def watch(self, lock: Lock, body: Interruptible) -> Iterator[None]:
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
            with entry.mutex:
                entry.done = True
            with self._mutex:
                self._watched.discard(entry)

    def shutdown(self) -> None:
        """Interrupt every running write so each commits what it has, and refuse to wait."""
        with self._mutex:
            self._shutting_down = True
            watched = list(self._watched)
        for entry in watched:
            with entry.mutex:
                if not entry.done:
                    entry.body.interrupt("server shutting down")

    def stop(self) -> None:
        """Stop the thread (tests, app teardown)."""
        self._stopping.set()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
            self._thread.start()

    def tick(self, running: int) -> float:
        """Seconds until the next check, for `running` watched writes.

        `interval` up to `BUSY_WRITES` writes, then longer in proportion, up to `MAX_INTERVAL`:
        a check costs the event loop some 10-20 µs per write (packing the pipelined scripts and
        parsing their answers), which with a few thousand slow uploads per worker, five times a
        second, took a tenth of the worker's time; at 2.5 checks a second of 1,000 writes it was
        still an eighth of the worker's CPU under `bench/slow_clients.py`. A newcomer waits for
        a running write to let go at most this long (its own wait is `TUSSERVER_LOCK_WAIT`, 5 s
        by default).
        """
        return min(max(self.interval, self.interval * running / BUSY_WRITES), MAX_INTERVAL)

    def _run(self) -> None:
        running = 0
        while not self._stopping.wait(self.tick(running)):
            with self._mutex:
                watched = list(self._watched)
            running = len(watched)
            answers = self._refresh_all(watched)
            if answers is not None and not answers:
                continue  # nothing running, or the store is down (logged once where it failed)
            for entry in watched:
                try:
                    self._check(entry, answers.get(entry) if answers is not None else None)
                except BackendUnavailable:
                    pass  # counted and logged once per outage where it happened (backend_status)
                except Exception:  # one bad check must not stop the watching of others
                    log.exception("lock keeper check failed for %s", entry.lock.upload_id)

    def _refresh_all(self, watched: list[_Watched]) -> dict[_Watched, tuple[bool, bool]] | None:
        """Every running write's lock refreshed (and asked about) in one round trip.

        Under the gevent worker one process runs thousands of slow uploads; a round trip per
        upload five times a second, one after the other, takes longer than a lock lives once
        the machine is busy. None when the locks cannot be refreshed in bulk (each check then
        refreshes its own); an empty answer when the store is down (nothing is interrupted for
        that: the outage is logged once where it happened).
        """
        running = [entry for entry in watched if not entry.done]
        if not running:
            return {}
        manager = getattr(running[0].lock, "manager", None)
        if manager is None or not hasattr(manager, "refresh_many"):
            return None
        try:
            answers = manager.refresh_many([entry.lock for entry in running])
        except BackendUnavailable:
            return {}
        return dict(zip(running, answers, strict=True))

    def _check(self, entry: _Watched, answer: tuple[bool, bool] | None = None) -> None:
        with entry.mutex:
            if not entry.done:
                self._check_running(entry, answer)

    def _check_running(self, entry: _Watched, answer: tuple[bool, bool] | None = None) -> None:
        """`answer`: this tick's bulk refresh of the entry's lock (None: refresh it now)."""
        if answer is not None:
            held, asked = entry.lock.refreshed(answer)
        else:
            held, asked = entry.lock.refresh()
        if entry.ended:
            # Interrupted already; the request is committing what it has: the lock was kept
            # alive until it does (a last S3 part may take a while), but nothing more happens.
            if not held:
                log.debug("upload %s lost its lock while committing", entry.lock.upload_id)
            return
        if entry.body.idle_seconds >= self.read_timeout:
            entry.ended = True
            entry.body.interrupt(f"no data received for {self.read_timeout}s")
            return
        if not held:
            entry.ended = True
            entry.body.interrupt("lock lost")
            return
        if asked:
            entry.ended = True
            metrics.LOCK_RELEASE_REQUESTS.inc()
            entry.body.interrupt("another request asked for the upload")
