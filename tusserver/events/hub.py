"""One Redis subscription per process, fanned out to the event streams it serves.

Every server of a fleet publishes each event on one pub/sub channel (`publisher.py`). A
process does not give each of its SSE clients a Redis connection: `EventHub` holds ONE
subscription (a daemon thread, a greenlet under the gevent worker, started when the first
stream opens) and hands each message to the local streams whose scope it matches -- the
owner's streams, or every admin stream for the fleet-wide scope. A stream's queue is bounded;
a stream too slow to keep up, or one open while the subscription was broken (messages were
lost), is told to catch up from the Redis stream itself (`RESYNC`), which is the record.

The number of open streams per process is capped (`TUSSERVER_EVENTS_MAX_STREAMS`): under the
gevent worker a stream is a greenlet and a queue (a few KiB); under gthread it holds one of the
worker's threads, so the cap is lowered there (see `gunicorn.py`) to keep threads for uploads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import metrics
from ..errors import TusError
from ..state.connect import REDIS_ERRORS, Client
from ..state.keys import Keys

log = logging.getLogger(__name__)

QUEUE_MAX = 256
"""Events waiting for one stream's client; a stream further behind catches up from Redis."""


class TooManyStreams(TusError):
    """This process holds as many event streams as it may: 503, try again (or another server)."""

    status, code = 503, "too-many-event-streams"
    default_message = "This server holds as many event streams as it may; try again later"

    def __init__(self, message: str | None = None):
        super().__init__(message, {"Retry-After": "10"})


@dataclass(frozen=True)
class Message:
    """One event as published: its entry id in the scope's stream and its JSON."""

    entry_id: str
    body: str


RESYNC = Message("", "")
"""Told to a stream that may have missed messages: read the Redis stream after your last id."""
CLOSED = Message("", "closed")
"""Told to every stream when the server shuts down."""


@dataclass(eq=False)
class Listener:
    """One open event stream of this process: its scope and its queue of messages."""

    scope: str
    messages: queue.Queue[Message] = field(default_factory=lambda: queue.Queue(QUEUE_MAX))
    behind: bool = False

    def deliver(self, message: Message) -> None:
        try:
            self.messages.put_nowait(message)
        except queue.Full:
            self.behind = True  # the next read catches up from the Redis stream

    def next(self, timeout: float) -> Message | None:
        """The next message, RESYNC if some were lost, or None after `timeout` (heartbeat)."""
        if self.behind:
            self.behind = False
            self._drain()
            return RESYNC
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def _drain(self) -> None:
        while True:
            try:
                self.messages.get_nowait()
            except queue.Empty:
                return


class EventHub:
    """The process's one subscription to the fleet's events, and its open streams."""

    def __init__(self, client: Client, keys: Keys, max_streams: int):
        self.client = client
        self.keys = keys
        self.max_streams = max_streams
        self._by_scope: dict[str, set[Listener]] = {}
        self._count = 0
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self.subscribed = threading.Event()
        """Set while the subscription is up (tests and the benchmark wait for it)."""

    @property
    def open_streams(self) -> int:
        return self._count

    def open(self, scope: str) -> Listener:
        """Register a stream for `scope`; 503 (`TooManyStreams`) when the process is full."""
        listener = Listener(scope)
        with self._mutex:
            if self._stopping:
                raise TooManyStreams("this server is shutting down")
            if self._count >= self.max_streams:
                raise TooManyStreams()
            self._by_scope.setdefault(scope, set()).add(listener)
            self._count += 1
            self._ensure_thread()
        metrics.EVENT_STREAMS_OPEN.inc()
        return listener

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait (the first stream of a process) until the subscription is up, so that what is
        published after the client saw the stream open is never missed."""
        return self.subscribed.wait(timeout)

    def close(self, listener: Listener) -> None:
        with self._mutex:
            listeners = self._by_scope.get(listener.scope)
            if listeners is None or listener not in listeners:
                return
            listeners.discard(listener)
            self._count -= 1
            if not listeners:
                del self._by_scope[listener.scope]
        metrics.EVENT_STREAMS_OPEN.dec()

    def shutdown(self) -> None:
        """End every stream (SIGTERM): clients reconnect, to this server's successor or another."""
        with self._mutex:
            self._stopping = True
            everyone = [item for group in self._by_scope.values() for item in group]
        for listener in everyone:
            listener.deliver(CLOSED)

    # -- the subscription ------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        """(Holding the mutex.) One subscriber per process, made after any fork."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="file-events-hub", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failed = False
        while not self._stopping:
            pubsub: Any = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.keys.events_channel)
                self.subscribed.set()
                if failed:
                    log.info("file events subscription restored")
                    self._resync_all()  # messages published meanwhile are in the streams
                    failed = False
                while not self._stopping:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except REDIS_ERRORS as exc:
                self.subscribed.clear()
                if not failed:
                    log.warning("file events subscription lost (Redis: %s); retrying", exc)
                failed = True
                time.sleep(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        pubsub.close()

    def _dispatch(self, data: str) -> None:
        scope, _, rest = data.partition("\n")
        entry_id, _, body = rest.partition("\n")
        if not entry_id:
            return
        with self._mutex:
            listeners = list(self._by_scope.get(scope, ()))
        message = Message(entry_id, body)
        for listener in listeners:
            listener.deliver(message)

    def _resync_all(self) -> None:
        with self._mutex:
            everyone = [item for group in self._by_scope.values() for item in group]
        for listener in everyone:
            listener.behind = True
            listener.deliver(RESYNC)
