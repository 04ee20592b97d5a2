"""Acknowledge a write only once replicas have it: `WAIT` after the write, on its connection.

Redis replication is asynchronous: a master answers a write before any replica has it, so a
failover (Sentinel promoting the replica, a Cluster replica taking over its primary's slots)
can lose the last writes the old master acknowledged. With `TUSSERVER_REDIS_WAIT_REPLICAS=n`
a commit (a PATCH's `commit_write`, a creation, a termination) is followed by
`WAIT n timeout`; the server reports the commit only once `n` replicas confirmed it, and
answers 503 with Retry-After when they did not within `TUSSERVER_REDIS_WAIT_TIMEOUT` ms.

`WAIT` covers the writes of the connection it is sent on (Redis remembers each connection's
last replication offset), so it must travel on the very connection that wrote: the write and
the `WAIT` are one non-transactional pipeline -- one round trip, as before. On a Cluster that
connection is one to the node that owns the upload's slot (keys of one upload share a hash
tag, so one node holds all of them).

Scripts are sent as `EVALSHA` in that pipeline: redis-py's pipelines would first ask
`SCRIPT EXISTS` (an extra round trip). A node that does not know the script yet (a fresh
master after a failover) answers NOSCRIPT without running anything; the script is then loaded
and the pipeline sent once more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.commands.core import Script
from redis.exceptions import MovedError, NoScriptError, RedisError

from ..errors import BackendUnavailable

__all__ = ["ReplicaWait", "ReplicasBehind"]


class ReplicasBehind(BackendUnavailable):
    """Fewer replicas than required confirmed a write in time: the commit is not reported."""

    default_message = "state store replicas did not confirm the write in time; try again later"


class ReplicaWait:
    """Runs a write, then `WAIT replicas timeout_ms`, on one connection, in one round trip."""

    def __init__(self, client: Any, replicas: int = 0, timeout_ms: int = 1000):
        self.client = client
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run `script` (all its keys in one slot), confirmed by the replicas; its answer."""

        def queue(pipe: Any) -> None:
            pipe.evalsha(script.sha, len(keys), *keys, *args)

        try:
            return self.commands(keys[0], queue)[0]
        except NoScriptError:
            self._node_client(keys[0]).script_load(script.script)
            return self.commands(keys[0], queue)[0]

    def commands(self, key: str, queue: Callable[[Any], None]) -> list[Any]:
        """Commands `queue` puts on a pipeline to the node of `key`, then WAIT: their answers.

        The commands run in order, not as a transaction (use a script for atomicity). The first
        error among the answers is raised; a NOSCRIPT answer means that script did not run.
        """
        for attempt in range(2):
            pipe = self._node_client(key).pipeline(transaction=False)
            queue(pipe)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            *answers, confirmed = pipe.execute(raise_on_error=False)
            moved = next((a for a in answers if isinstance(a, MovedError)), None)
            if moved is not None and not attempt and self._is_cluster:
                # The slot moved (a failover, a reshard): learn where, and send it there.
                self.client.nodes_manager.update_moved_exception(moved)
                continue
            for answer in [*answers, confirmed]:
                if isinstance(answer, Exception):
                    raise answer
            if int(confirmed) < self.replicas:
                raise ReplicasBehind()
            return answers
        raise RedisError("the upload's slot moved twice")  # pragma: no cover

    @property
    def _is_cluster(self) -> bool:
        return hasattr(self.client, "get_node_from_key")

    def _node_client(self, key: str) -> Any:
        """A plain client whose pipeline is one connection to the server holding `key`."""
        if not self._is_cluster:
            return self.client
        node = self.client.get_node_from_key(key)
        if node.redis_connection is None:
            self.client.nodes_manager.initialize()
            node = self.client.get_node_from_key(key)
        return node.redis_connection
