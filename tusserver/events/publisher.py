"""Publishing file events without costing the upload path a Redis round trip.

`EventPublisher.publish` only queues the event; one sender per process (a daemon thread, a
greenlet under the gevent worker, started on first use so it is made after gunicorn forks)
sends whatever is queued in one pipelined round trip. A PATCH therefore never waits for an
event, and many uploads finishing at once share round trips. Each event is one small Lua
script per stream (the owner's and the fleet-wide one, different Cluster slots): `XADD` with
`MAXLEN ~`, then `PUBLISH` of the new entry id and the event on the fleet's channel, so every
server learns of it (see `hub.py`) and the id it publishes is the one a client resumes from.

Progress is throttled per upload: at most one event per `TUSSERVER_EVENTS_PROGRESS_INTERVAL`,
and the latest suppressed one is sent when the interval has passed (so the last offset is
always announced), unless a `finished` or `deleted` event of the upload made it moot.

Events are notifications, not the record: the upload state in Redis stays the truth. If Redis
is unreachable the sender retries a batch for a few seconds, then drops it with one warning;
a client that missed events resumes from the stream or reloads its list.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..models import UploadInfo
from ..state.batch import Batch
from ..state.connect import REDIS_ERRORS, Client
from ..state.keys import Keys
from .payload import EventKind, event_payload

log = logging.getLogger(__name__)

_APPEND = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\\n' .. id .. '\\n' .. ARGV[2])
return id
"""
"""Append one event to one stream and tell the fleet, with the entry id (one slot: KEYS[1])."""

STREAM_TTL_MS = 30 * 86400 * 1000
"""A stream nobody wrote to for 30 days goes (a removed user's, say)."""
QUEUE_MAX = 10_000
"""Events waiting to be sent, at most; past that (Redis down for long) the oldest are dropped."""
THROTTLE_MEMORY = 10_000
"""Uploads whose last progress time is remembered (oldest forgotten first)."""
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class _Outgoing:
    owner: str | None
    upload_id: str
    body: str


class EventPublisher:
    """Queues file events and sends them to Redis in the background."""

    def __init__(
        self,
        client: Client,
        keys: Keys,
        retain: int,
        retain_all: int,
        progress_interval: float,
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.keys = keys
        self.retain = retain
        self.retain_all = retain_all
        self.progress_interval = progress_interval
        self.clock = clock
        self._append = client.register_script(_APPEND)
        self._queue: deque[_Outgoing] = deque()
        self._trailing: dict[str, tuple[float, UploadInfo]] = {}
        self._last_progress: OrderedDict[str, float] = OrderedDict()
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._failing = False

    # -- what the service calls ------------------------------------------------------------
    def publish(self, kind: EventKind, info: UploadInfo, **extra: Any) -> None:
        """Queue one event. Partial uploads are parts of a file the user never sees: silent.

        An upload created complete (empty, or a final upload of finished parts) also gets its
        `finished` event here, so the service makes one call per operation."""
        if info.is_partial:
            return
        outgoing = self._outgoing(kind, info, extra)
        with self._mutex:
            if kind in ("finished", "deleted"):
                self._trailing.pop(info.id, None)
                self._last_progress.pop(info.id, None)
            self._enqueue(outgoing)
            if kind == "created" and info.is_complete:  # made whole at once (empty, final)
                self._enqueue(self._outgoing("finished", info, {}))

    def progress(self, info: UploadInfo) -> None:
        """A committed write that did not finish the upload: throttled (see the module doc).

        A held-back event keeps only the upload's latest state; its payload is made when it
        is due, so the PATCHes in between (most of a fast upload's) cost a dictionary update,
        and the sender is woken only when a new hold starts (its due time is then new).
        """
        if info.is_partial:
            return
        now = time.monotonic()
        with self._mutex:
            last = self._last_progress.get(info.id)
            if last is not None and now - last < self.progress_interval:
                held = info.id in self._trailing
                self._trailing[info.id] = (last + self.progress_interval, info)
                if not held:
                    self._ensure_sender()
                    self._wake.set()  # the sender recomputes when it must wake up
                return
            outgoing = self._outgoing("progress", info, {})
            self._last_progress[info.id] = now
            self._last_progress.move_to_end(info.id)
            while len(self._last_progress) > THROTTLE_MEMORY:
                self._last_progress.popitem(last=False)
            self._trailing.pop(info.id, None)
            self._enqueue(outgoing)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued (not throttled progress) was sent; True if it was."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- the queue and the sender ------------------------------------------------------------
    def _outgoing(self, kind: EventKind, info: UploadInfo, extra: dict[str, Any]) -> _Outgoing:
        body = json.dumps(event_payload(kind, info, self.clock(), **extra), separators=(",", ":"))
        return _Outgoing(info.owner, info.id, body)

    def _enqueue(self, outgoing: _Outgoing) -> None:
        """(Holding the mutex.)"""
        if len(self._queue) >= QUEUE_MAX:
            self._queue.popleft()
        self._queue.append(outgoing)
        self._idle.clear()
        self._ensure_sender()
        self._wake.set()

    def _ensure_sender(self) -> None:
        """(Holding the mutex.) One sender per process, made after any fork."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="file-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._next_wake())
            self._wake.clear()
            batch = self._take()
            if batch:
                self._send(batch)
            with self._mutex:
                if not self._queue:
                    self._idle.set()

    def _next_wake(self) -> float | None:
        """Seconds until a held-back progress event is due (None: nothing to wait for)."""
        with self._mutex:
            if self._queue:
                return 0.0
            if not self._trailing:
                return None
            due = min(due for due, _ in self._trailing.values())
        return max(0.0, due - time.monotonic())

    def _take(self) -> list[_Outgoing]:
        now = time.monotonic()
        with self._mutex:
            for upload_id, (due, info) in list(self._trailing.items()):
                if due <= now:
                    del self._trailing[upload_id]
                    self._last_progress[upload_id] = now
                    self._queue.append(self._outgoing("progress", info, {}))
            batch = list(self._queue)
            self._queue.clear()
        return batch

    def _send(self, batch: list[_Outgoing]) -> None:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                calls = Batch(self.client)
                for outgoing in batch:
                    self._queue_append(calls, outgoing)
                calls.execute()
            except REDIS_ERRORS as exc:
                if not self._failing:
                    log.warning("file events not sent yet (Redis: %s); retrying", exc)
                self._failing = True
                if time.monotonic() >= deadline or self._stopping:
                    log.warning("dropped %d file event(s): Redis unreachable", len(batch))
                    return
                time.sleep(0.5)
                continue
            if self._failing:
                log.info("file events are sent again")
            self._failing = False
            return

    def _queue_append(self, calls: Batch, outgoing: _Outgoing) -> None:
        """One script per stream: each touches one key (one Cluster slot); `Batch` sends them
        in one round trip per node."""
        channel = self.keys.events_channel
        ttl = str(STREAM_TTL_MS)
        if outgoing.owner:
            key = self.keys.owner_events(outgoing.owner)
            scope = owner_scope(outgoing.owner)
            calls.script(self._append, [key], [self.retain, outgoing.body, channel, scope, ttl])
        calls.script(
            self._append,
            [self.keys.all_events],
            [self.retain_all, outgoing.body, channel, ALL, ttl],
        )


ALL = "all"
"""The scope of the fleet-wide stream, the one admins follow."""


def owner_scope(owner: str) -> str:
    """The scope of one owner's stream (as named in pub/sub messages)."""
    return "o:" + owner
