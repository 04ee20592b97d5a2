"""Blocking disk calls off the event loop.

Under the gevent worker (the default) every connection is a greenlet on one event loop per
process, so a call that blocks in the kernel (an `fsync` of a large file, a write stalled by
dirty-page throttling, `sendfile` from a file not in the page cache) would stall every other
connection of that worker. `blocking(fn, *args)` runs such a call on gevent's thread pool and
lets the loop serve others meanwhile; under any other worker (gthread, the Flask test client) it
simply calls `fn`, because there the caller is already a thread of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def event_loop_active() -> bool:
    """True in a process that gevent has monkey-patched (the gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def blocking(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` without stalling the event loop (see the module docstring)."""
    if not event_loop_active():
        return fn(*args)
    from gevent import get_hub

    return get_hub().threadpool.apply(fn, args)  # type: ignore[no-any-return]
