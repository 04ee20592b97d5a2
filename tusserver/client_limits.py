"""Open connections per client address, counted across all gunicorn workers.

`TUSSERVER_MAX_CONNECTIONS_PER_CLIENT` caps how many connections one address may hold at once
(a single host opening thousands of slow connections is the cheapest attack on an upload
server). Each worker serves only its own connections, so the count lives in shared memory made
by the gunicorn master before it forks: every worker gets a region of its own (only that worker
writes it, so no lock is needed) and the total for an address is the sum over all regions. When
a worker exits, the master zeroes its region, so a crashed worker's connections never count
against anyone.

A region is a small open-addressing hash table of (address hash, count) pairs; a slot whose
count fell to zero is reused. Reads of other workers' regions are not synchronised: a total can
be off by a connection that is opening or closing at that instant, which is fine for a cap.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
from typing import Any

log = logging.getLogger(__name__)

SLOTS = 8192
"""Client addresses one worker can track at once (each with at least one open connection)."""
PROBES = 64


class ConnectionTable:
    """Shared (address -> open connections) counts, one region per worker."""

    def __init__(self, regions: int):
        self.regions = regions
        self._memory = mmap.mmap(-1, regions * SLOTS * 16)  # anonymous, shared across fork
        self._cells = memoryview(self._memory).cast("q")  # [key, count] pairs, 8-byte aligned
        self._free = list(range(regions))
        self._claimed: dict[int, int] = {}  # master: worker age -> region
        self.region: int | None = None  # in a worker: the region it writes

    # -- the master ---------------------------------------------------------------------------
    def assign(self, worker_age: int) -> int | None:
        """Before forking a worker: the region it will own (None: none left, no counting)."""
        if not self._free:
            log.warning("no connection-count region left; a worker will not count connections")
            return None
        region = self._free.pop(0)
        self._claimed[worker_age] = region
        return region

    def release(self, worker_age: int) -> None:
        """After a worker exited: forget its connections and free its region."""
        region = self._claimed.pop(worker_age, None)
        if region is None:
            return
        base = region * SLOTS * 2
        self._cells[base : base + SLOTS * 2] = memoryview(bytes(SLOTS * 16)).cast("q")
        self._free.append(region)

    # -- a worker -----------------------------------------------------------------------------
    def total(self, address: str) -> int:
        """Connections open from `address` in all workers."""
        key = _key(address)
        count = 0
        for region in range(self.regions):
            slot = self._find(region, key)
            if slot is not None:
                count += max(0, self._cells[slot + 1])
        return count

    def open(self, address: str) -> int | None:
        """Count a connection from `address`; the slot to pass to `close` (None: not counted)."""
        if self.region is None:
            return None
        key = _key(address)
        slot = self._find(self.region, key)
        if slot is None:
            slot = self._vacant(self.region, key)
            if slot is None:
                return None  # the table is full: fail open rather than refuse everybody
            self._cells[slot] = key
        self._cells[slot + 1] += 1
        return slot

    def close(self, slot: int | None) -> None:
        if slot is not None and self._cells[slot + 1] > 0:
            self._cells[slot + 1] -= 1

    def _probe(self, region: int, key: int) -> range:
        start = key % SLOTS
        return range(start, start + PROBES)

    def _find(self, region: int, key: int) -> int | None:
        base = region * SLOTS * 2
        for index in self._probe(region, key):
            slot = base + (index % SLOTS) * 2
            stored = self._cells[slot]
            if stored == key:
                return slot
            if stored == 0:
                return None
        return None

    def _vacant(self, region: int, key: int) -> int | None:
        base = region * SLOTS * 2
        for index in self._probe(region, key):
            slot = base + (index % SLOTS) * 2
            if self._cells[slot] == 0 or self._cells[slot + 1] <= 0:
                return slot
        return None


def _key(address: str) -> int:
    """A non-zero 63-bit hash of the address (0 marks an empty slot)."""
    digest = hashlib.blake2b(address.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") >> 1) or 1


EVENT_STREAM_PATH = "/api/events"


def is_event_stream(path: str | None) -> bool:
    """Whether a request opens the long-lived event stream (exempt from the per-client cap)."""
    return path == EVENT_STREAM_PATH


TABLE: ConnectionTable | None = None
"""The server's table, made by the gunicorn master when a cap is set (see tusserver.gunicorn)."""


class ForwardedClientLimit:
    """Behind a reverse proxy: requests in flight per forwarded client address.

    There, every connection comes from the proxy (which also reuses them for many clients), so
    counting connections per socket peer would cap the proxy itself. This middleware sits
    inside `ProxyFix` (which has put the `X-Forwarded-For` address in `REMOTE_ADDR`) and counts
    the requests each client has running; one over `limit` gets 429. A request is counted while
    the app handles it, which for an upload is while its body is read.

    An event stream (`GET /api/events`) is not counted: it stays open for as long as a page is,
    and a user with a few tabs open must still be able to upload. (A streamed body is sent
    after the app returned, so it would only count for the moment it starts; skipping it says
    so.) Streams are bounded by the per-process stream cap (`TUSSERVER_EVENTS_MAX_STREAMS`).
    """

    def __init__(self, app: Any, limit: int, table: ConnectionTable | None = None):
        self.app = app
        self.limit = limit
        self.table = table

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        table = self.table or TABLE
        if table is None or table.region is None or is_event_stream(environ.get("PATH_INFO")):
            return self.app(environ, start_response)
        address = "forwarded:" + str(environ.get("REMOTE_ADDR", ""))
        slot = table.open(address)
        try:
            if table.total(address) > self.limit:
                body = b"TOO_MANY_CONNECTIONS: too many requests from this client at once"
                start_response(
                    "429 Too Many Requests",
                    [
                        ("Content-Type", "text/plain"),
                        ("Content-Length", str(len(body))),
                        ("Retry-After", "5"),
                        ("Tus-Resumable", "1.0.0"),
                    ],
                )
                return [body]
            return self.app(environ, start_response)
        finally:
            table.close(slot)
