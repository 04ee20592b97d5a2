"""Acknowledge a write only once replicas have it: `WAIT` after the write, on its connection.

Redis replication is asynchronous: a master answers a write before any replica has it, so a
failover (Sentinel promoting the replica, a Cluster replica taking over its primary's slots)
can lose the last writes the old master acknowledged. With `TUSSERVER_REDIS_WAIT_REPLICAS=n`
a commit (a PATCH's `commit_write`, a creation, a termination) is followed by
`WAIT n timeout`; the server reports the commit only once `n` replicas confirmed it, and
answers 503 with Retry-After when they did not within `TUSSERVER_REDIS_WAIT_TIMEOUT` ms.

`WAIT` covers the writes of the connection it is sent on (the server remembers each
connection's last replication offset), so it travels on the very connection that wrote: it is
the last command of the `Batch` pipeline to the node that holds the upload (keys of one upload
share a hash tag, so on a Cluster one node holds all of them) -- one round trip, as before.
When a call of that pipeline had to be sent again on its own (a script the node did not know
yet, as after every failover; a MOVED), that retry used another connection: then a small
marker write in the upload's slot and a `WAIT` go together on one connection, and since the
replication stream is ordered, the replicas confirming the marker confirm the retry too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import backend_status
from ..errors import BackendUnavailable

__all__ = ["ReplicaWait", "ReplicasBehind"]

MARKER_SUFFIX = ":replicated"
"""Appended to a key of the upload to name the marker (same hash tag, so the same slot)."""


class ReplicasBehind(BackendUnavailable):
    """Fewer replicas than required confirmed a write in time: the commit is not reported."""

    default_message = "state store replicas did not confirm the write in time; try again later"


@dataclass(frozen=True)
class ReplicaWait:
    """How many replicas must confirm a commit (0: none, do not wait), and for how long."""

    replicas: int = 0
    timeout_ms: int = 1000

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    def queue(self, pipe: Any) -> None:
        """Put the `WAIT` on a pipeline, after the writes it is to cover."""
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)

    def check(self, confirmed: Any) -> None:
        """Raise the 503 unless the `WAIT` answer counts enough replicas."""
        if isinstance(confirmed, Exception):
            raise confirmed
        if int(confirmed) < self.replicas:
            # Logged once per outage and counted, like Redis being away: the commits of every
            # server stop until the replicas catch up or come back.
            backend_status.failed(
                backend_status.REDIS,
                f"{confirmed} of {self.replicas} replicas confirmed a commit within "
                f"{self.timeout_ms} ms",
            )
            raise ReplicasBehind()

    def barrier(self, node_client: Any, key: str) -> None:
        """Confirm everything the node has written so far (after a write on another connection).

        The marker lives in `key`'s slot and expires on its own shortly after.
        """
        pipe = node_client.pipeline(transaction=False)
        pipe.set(key + MARKER_SUFFIX, "1", px=self.timeout_ms + 1000)
        self.queue(pipe)
        marked, confirmed = pipe.execute(raise_on_error=False)
        if isinstance(marked, Exception):  # e.g. MOVED: the marker did not land there
            raise marked
        self.check(confirmed)
