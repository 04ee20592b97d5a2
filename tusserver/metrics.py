"""Prometheus metrics, counted across every gunicorn worker.

`tusserver serve` sets `PROMETHEUS_MULTIPROC_DIR` before any worker starts, so each worker
writes its samples to files there and `/metrics` merges them (prometheus_client's multiprocess
mode). Without that variable (tests, a single process) the default registry is used.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .models import UploadInfo, WriteResult
from .storage.base import DataStore

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("tusserver_requests", "HTTP requests by method and status", ["method", "status"])
REQUEST_SECONDS = Histogram(
    "tusserver_request_duration_seconds",
    "Time from a request to the last byte of its response",
    ["method"],
)
BYTES_RECEIVED = Counter("tusserver_bytes_received", "Upload bytes received in request bodies")
BYTES_SPLICED = Counter(
    "tusserver_bytes_spliced",
    "Upload bytes moved from the socket to the file by splice(2), never copied through Python",
)
BYTES_SERVED = Counter("tusserver_bytes_served", "Download bytes handed to the client's connection")
RESPONSES_CUT_SHORT = Counter(
    "tusserver_responses_cut_short",
    "Responses whose body ended before its Content-Length, by who ended it (backend, client)",
    ["reason"],
)
UPLOADS_CREATED = Counter("tusserver_uploads_created", "Uploads created")
UPLOADS_FINISHED = Counter("tusserver_uploads_finished", "Uploads that received all their bytes")
UPLOADS_TERMINATED = Counter("tusserver_uploads_terminated", "Uploads terminated by clients")
UPLOADS_EXPIRED = Counter("tusserver_uploads_expired", "Incomplete uploads removed on expiry")
UPLOADS_ACTIVE = Gauge(
    "tusserver_uploads_active", "PATCH requests writing right now", multiprocess_mode="livesum"
)
EVENT_STREAMS_OPEN = Gauge(
    "tusserver_event_streams_open",
    "Open live-update streams (GET /api/events)",
    multiprocess_mode="livesum",
)
LOCK_WAITS = Counter("tusserver_lock_waits", "Requests that found an upload locked and waited")
LOCK_RELEASE_REQUESTS = Counter(
    "tusserver_lock_release_requests", "Running writes asked to let go of an upload"
)
LOCKS_REFUSED = Counter("tusserver_locks_refused", "Requests refused with 423 after waiting")
LOCKS_BROKEN = Counter(
    "tusserver_locks_broken", "Locks of dead processes on this host broken by a waiter"
)
HOOK_CALLS = Counter("tusserver_hook_calls", "Hook deliveries", ["event"])
HOOK_FAILURES = Counter("tusserver_hook_failures", "Hook deliveries that failed", ["event"])
BACKEND_FAILURES = Counter(
    "tusserver_backend_failures",
    "Calls to a backend (redis, storage, hooks) that failed; logged once per outage",
    ["backend"],
)
STORAGE_SECONDS = Histogram(
    "tusserver_storage_operation_seconds", "Data store operation latency", ["operation"]
)

_EVENT_COUNTERS = {
    "post-create": UPLOADS_CREATED,
    "post-finish": UPLOADS_FINISHED,
    "post-terminate": UPLOADS_TERMINATED,
}


def render() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn `child_exit`: drop a dead worker's live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def record_request(method: str, status: int, seconds: float, received: int, sent: int) -> None:
    REQUESTS.labels(method, str(status)).inc()
    REQUEST_SECONDS.labels(method).observe(seconds)
    if received:
        BYTES_RECEIVED.inc(received)
    if sent:
        BYTES_SERVED.inc(sent)


def record_hook(event: str, ok: bool) -> None:
    HOOK_CALLS.labels(event).inc()
    if not ok:
        HOOK_FAILURES.labels(event).inc()


class MetricsHooks:
    """Counts upload lifecycle events; sits in the hooks chain like any receiver."""

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        return None

    def after(self, event: str, info: UploadInfo) -> None:
        counter = _EVENT_COUNTERS.get(event)
        if counter is not None:
            counter.inc()


class TimedStore:
    """A data store that reports how long each operation takes; otherwise the store itself."""

    def __init__(self, store: DataStore):
        self._store = store
        self.name = store.name
        self.keeps_parts = store.keeps_parts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _timed(self, operation: str, call: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            STORAGE_SECONDS.labels(operation).observe(time.perf_counter() - started)

    def check(self) -> None:
        self._timed("check", self._store.check)

    def create(self, info: UploadInfo) -> None:
        self._timed("create", self._store.create, info)

    def write(
        self, info: UploadInfo, chunks: Iterable[bytes], attempt: str | None = None
    ) -> WriteResult:
        result: WriteResult = self._timed("write", self._store.write, info, chunks, attempt)
        if result.spliced:
            BYTES_SPLICED.inc(result.spliced)
        return result

    def discard(self, info: UploadInfo, result: WriteResult, exclusive: bool = False) -> None:
        self._timed("discard", self._store.discard, info, result, exclusive)

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        return self._store.read(info, start, end)

    def local_path(self, info: UploadInfo) -> Path | None:
        return self._store.local_path(info)

    def open_file(self, info: UploadInfo) -> Any:
        return self._store.open_file(info)

    def stored_uploads(self) -> Iterator[tuple[str, float]]:
        return self._store.stored_uploads()

    def save_info(self, info: UploadInfo) -> None:
        self._timed("save_info", self._store.save_info, info)

    def delete(self, info: UploadInfo) -> None:
        self._timed("delete", self._store.delete, info)
