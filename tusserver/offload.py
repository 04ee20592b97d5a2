"""Blocking disk calls off the event loop.

Under the gevent worker (the default) every connection is a greenlet on one event loop per
process, so a call that blocks in the kernel (an `fsync` of a large file, a write stalled by
dirty-page throttling, `sendfile` from a file not in the page cache) would stall every other
connection of that worker. `blocking(fn, *args)` runs such a call on gevent's thread pool and
lets the loop serve others meanwhile; under any other worker (gthread, the Flask test client) it
simply calls `fn`, because there the caller is already a thread of its own.
"""

from __future__ import annotations

import contextlib
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


class WriteBehind:
    """Blocking calls started in the background, one at a time, in order.

    A large upload alternates between reading the socket and writing the file. Under the event
    loop `submit` hands the write to the thread pool and returns at once, so the next chunk is
    received while the previous one is written (two cores at work instead of one, one chunk's
    buffer more in memory); it first waits for the call before it, so at most one is in flight
    and they run in order. `wait()` waits for the last one (call it before using what the calls
    wrote, and before closing the file they write to); a call's exception is raised by the next
    `submit` or `wait`. Elsewhere (gthread, the test client) `submit` simply calls.
    """

    def __init__(self) -> None:
        self._pending: Any = None
        self._background = event_loop_active()

    def submit(self, fn: Callable[..., Any], *args: Any, inline: bool = False) -> None:
        """Start `fn(*args)` once the call before it is done; `inline`: run it here, now.

        `inline` is for a call so small that handing it to a thread costs the event loop more
        than the call itself (see `LocalStore.write`).
        """
        self.wait()
        if inline or not self._background:
            fn(*args)
            return
        from gevent import get_hub

        self._pending = get_hub().threadpool.spawn(fn, *args)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the pool once the call before it is done, waited for: its result.

        Unlike `blocking`, the call stays the one in flight while it runs: if the waiting
        greenlet is killed, `then` still waits for it before closing what it uses.
        """
        self.wait()
        if not self._background:
            return fn(*args)
        from gevent import get_hub

        self._pending = get_hub().threadpool.spawn(fn, *args)
        result = self._pending.get()
        self._pending = None
        return result  # type: ignore[no-any-return]

    def wait(self) -> None:
        """Wait for the call in flight (if any); raise its exception."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.get()

    def then(self, fn: Callable[..., Any], *args: Any) -> None:
        """`fn(*args)` once nothing is in flight: now, or when the call running ends.

        For the clean-up after a failure (closing the file): the call in flight may still be
        writing to it, and a greenlet that is being killed cannot wait for it.
        """
        pending, self._pending = self._pending, None
        if pending is None or pending.ready():
            with contextlib.suppress(Exception):
                fn(*args)
            return

        def run(_: Any) -> None:
            with contextlib.suppress(Exception):
                fn(*args)

        pending.rawlink(run)
