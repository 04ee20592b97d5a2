"""Whether each backend (Redis, the data store, the hook receiver) is reachable, as seen by this
process: one log line when a backend goes away, one when it comes back, every failure counted.

While Redis is down, everything that touches it fails, and some things touch it several times a
second: the lock keeper checks every running upload five times a second, so an outage of 8 s
with one upload logged 40 tracebacks, and with a hundred uploads the log is unreadable exactly
when an operator needs it. The adapters (the only code that knows a backend's exceptions) report
here instead of logging: `failed()` on every failure, `ok()` on every success. The first failure
of an outage is logged (a warning with the reason), the rest only counted in
`tusserver_backend_failures_total{backend}`; the first success afterwards logs that the backend
is back, with how long it was gone and how many calls failed. The periodic loops (lock keeper,
reaper, hook queue) then let a `BackendUnavailable` pass without a word: it was reported where
it happened.

The record is per process, like the log it keeps quiet: each gunicorn worker logs its own two
lines. `ok()` on the common path (backend up) is one dictionary lookup, without a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from . import metrics
from .logsafe import escape

log = logging.getLogger("tusserver.backends")

REDIS = "redis"
STORAGE = "storage"
HOOKS = "hooks"

_MAX_REASON = 200


@dataclass
class _Outage:
    since: float
    reason: str
    failures: int = 1


_mutex = threading.Lock()
_outages: dict[str, _Outage] = {}


def failed(backend: str, reason: BaseException | str) -> None:
    """A call to `backend` failed: count it; log it if it starts an outage."""
    metrics.BACKEND_FAILURES.labels(backend).inc()
    text = _describe(reason)
    with _mutex:
        outage = _outages.get(backend)
        if outage is not None:
            outage.failures += 1
            return
        _outages[backend] = _Outage(time.monotonic(), text)
    log.warning(
        "%s unavailable: %s (further failures are counted, not logged, until it is back)",
        backend,
        text,
    )


def ok(backend: str) -> None:
    """A call to `backend` succeeded: if it was down, log that it is back."""
    if backend not in _outages:
        return
    with _mutex:
        outage = _outages.pop(backend, None)
    if outage is None:
        return
    log.warning(
        "%s available again after %.1fs (%d failed call%s)",
        backend,
        time.monotonic() - outage.since,
        outage.failures,
        "" if outage.failures == 1 else "s",
    )


def is_down(backend: str) -> bool:
    """True while `backend`'s last call failed."""
    return backend in _outages


def _describe(reason: BaseException | str) -> str:
    if isinstance(reason, BaseException):
        first = (str(reason).strip().splitlines() or [""])[0]
        reason = f"{type(reason).__name__}: {first}" if first else type(reason).__name__
    return escape(reason, limit=_MAX_REASON)
