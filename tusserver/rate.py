"""The minimum body rate: a request body that brings too few bytes over a window is ended.

A client that keeps a PATCH open while sending a byte now and then ties up a connection, a lock
and a buffer for as long as it likes; the read timeout alone only catches one that sends nothing
at all. `MinimumRate` looks at the bytes of the last `window` seconds whenever bytes arrive: once
the body has been running for a whole window, fewer than `rate * window` bytes in the last
window means too slow. A client that sends steadily at or above the rate is never cut off, however
long its body takes. The check is made when bytes arrive; a client that sends nothing at all is
ended by the lock keeper's read timeout instead.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class MinimumRate:
    """Tracks (time, bytes so far) and says when the last window brought too little."""

    def __init__(
        self, rate: float, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.window = window
        self._clock = clock
        self.started = clock()
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def too_slow(self, received: int) -> bool:
        """Record that `received` bytes arrived in all so far; True once the rate is missed."""
        if not self.enabled:
            return False
        now = self._clock()
        samples = self._samples
        if now - samples[-1][0] >= self.window / 64:  # a bounded number of samples per window
            samples.append((now, received))
        start = now - self.window
        # Keep the newest sample at or before the window's start as the baseline.
        while len(samples) > 1 and samples[1][0] <= start:
            samples.popleft()
        if now - self.started < self.window:
            return False
        return received - samples[0][1] < self.rate * self.window
