"""Garbage collection for a worker that holds thousands of connections.

CPython's cyclic garbage collector stops the whole process while it runs, and a full
(generation 2) collection walks every container object the process has. A gevent worker holding
10,000 idle keep-alive connections and 1,000 trickling uploads has about 300,000 of them, and
with the default thresholds (700, 10, 10) it ran a full collection every 3 s, each stopping the
event loop, and so every connection of that worker, for 250-900 ms (measured with
`bench/slow_clients.py`: 12-16 full collections per worker in 50 s, 4-5 s of pauses, a tenth of a
core). Almost nothing was found: fewer than 250 objects per full collection. The objects that
keep it busy are alive (connections, running requests), not garbage.

`tune_for_many_connections()`, called once a worker has loaded the application:

- `gc.freeze()` moves everything that exists then (modules, classes, the app: about 85,000
  objects) out of the collector's reach for good; they live as long as the process anyway.
- A young generation of `YOUNG_THRESHOLD` objects instead of 700: a running PATCH's objects live
  for seconds, so with 700 they survived the young collections and piled into the old
  generation, which is what made full collections so frequent. Young collections are now rarer
  and each walks at most this many objects (about 30 ms on a loaded 2-core machine).
- A full collection at most every `OLD_THRESHOLD` middle-generation collections (the
  interpreter also waits until a quarter of the old generation is new since the last one), so
  minutes apart under this load instead of seconds. The rare cyclic garbage that reaches the old
  generation waits that long to be freed; objects without cycles are freed at once as always.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 10
OLD_THRESHOLD = 100


def tune_for_many_connections() -> None:
    """Freeze what exists now and space out collections (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
