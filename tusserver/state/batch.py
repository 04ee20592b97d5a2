"""Several commands and Lua scripts in one round trip per Redis node, on any topology.

redis-py's cluster pipeline refuses scripts (EVALSHA), and a plain pipeline loads its scripts
with an extra `SCRIPT EXISTS` round trip on every execute. A `Batch` does neither: it sends
`EVALSHA` for scripts and commands as they are, grouped by the node that serves each call's key
(one group on a single server or a Sentinel master), and repairs the rare failures one call at a
time through the full client, which loads a missing script and follows MOVED/ASK redirections
and failovers.

Each call names the key it routes by; all keys of one call must share its slot (the key scheme
in docs/architecture.md guarantees that for every script here). Node groups are sent one after
the other, in the order of their first call, and calls on one node keep their order: callers
rely on that to write one key before another.

A batch may `confirm` a key: its node's pipeline then ends with `WAIT` for the replicas
(`TUSSERVER_REDIS_WAIT_REPLICAS`, see state/replication.py), and `execute()` raises a 503 if
they did not confirm in time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ConnectionError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TimeoutError,
    TryAgainError,
)

from .replication import ReplicaWait

__all__ = ["Batch", "is_cluster"]

log = logging.getLogger(__name__)

_RETRY_ALONE = (
    NoScriptError,
    MovedError,
    AskError,
    TryAgainError,
    ClusterDownError,
    ConnectionError,
    TimeoutError,
)
"""Failures after which the call is sent again on its own (it did not run, or ran elsewhere)."""


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


@dataclass
class _Call:
    key: str
    queue: Callable[[Any], Any]  # issue the call on a pipeline or a client
    optional: bool = False  # a failure is its answer (an exception), not the batch's


@dataclass
class Batch:
    """Calls gathered now and sent together by `execute()`; answers come back in call order."""

    client: Any
    calls: list[_Call] = field(default_factory=list)
    replicas: ReplicaWait | None = None
    confirm_key: str | None = None

    def confirm(self, key: str, replicas: ReplicaWait) -> Batch:
        """Answer only once `replicas` have the writes sent to the node that holds `key`."""
        if replicas.enabled:
            self.replicas, self.confirm_key = replicas, key
        return self

    def script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Batch:
        """Run `script` (registered on any client) with `keys`, routed by the first key."""
        keys, args = list(keys), list(args)

        def queue(target: Any) -> Any:
            if _is_pipeline(target):
                return target.evalsha(script.sha, len(keys), *keys, *args)
            return script(keys=keys, args=args, client=target)

        self.calls.append(_Call(keys[0], queue))
        return self

    def command(
        self, key: str, name: str, *args: Any, optional: bool = False, **options: Any
    ) -> Batch:
        """A client method (`zadd`, `hgetall`, ...) whose first key is `key`.

        An `optional` call's failure (after its retry) is returned as its answer instead of
        failing the batch: for index updates whose loss a reader repairs.
        """

        def queue(target: Any) -> Any:
            return getattr(target, name)(key, *args, **options)

        self.calls.append(_Call(key, queue, optional))
        return self

    def execute(self) -> list[Any]:
        if not self.calls:
            return []
        groups = self._by_node()
        answers: list[Any] = [None] * len(self.calls)
        waiting = self._confirming_client()
        waited = False
        for client, indexes in groups:
            pipe = client.pipeline(transaction=False)
            for index in indexes:
                self.calls[index].queue(pipe)
            confirm = self.replicas is not None and client is waiting
            if confirm:
                self.replicas.queue(pipe)  # type: ignore[union-attr]
            try:
                results = pipe.execute(raise_on_error=False)
            except _RETRY_ALONE as exc:  # the node went away: each call again, on its own
                results = [exc] * (len(indexes) + confirm)
            if confirm:
                *results, confirmed = results
                retried = any(isinstance(result, _RETRY_ALONE) for result in results)
            for index, result in zip(indexes, results, strict=True):
                answers[index] = self._settle(self.calls[index], result)
            if confirm:
                self._confirmed(confirmed, retried)
                waited = True
        if self.replicas is not None and not waited:  # no call went to that node
            self._confirmed(None, retried=True)
        return answers

    def _confirming_client(self) -> Any:
        """The client (of `_by_node`) whose pipeline carries the `WAIT`, if any."""
        if self.confirm_key is None:
            return None
        if not is_cluster(self.client):
            return self.client
        return self.client.get_redis_connection(self.client.get_node_from_key(self.confirm_key))

    def _confirmed(self, confirmed: Any, retried: bool) -> None:
        """The replicas' answer; after a retry on another connection, a barrier instead."""
        assert self.replicas is not None and self.confirm_key is not None
        if not retried:
            self.replicas.check(confirmed)
            return
        self.replicas.barrier(self._confirming_client(), self.confirm_key)

    def _settle(self, call: _Call, result: Any) -> Any:
        """The call's answer: as the pipeline gave it, or retried alone after a miss."""
        try:
            if isinstance(result, _RETRY_ALONE):
                return call.queue(self.client)
            if isinstance(result, Exception):
                raise result
        except (RedisError, RedisClusterException) as exc:
            if call.optional:
                log.warning("index update on %s failed (readers repair it): %s", call.key, exc)
                return exc
            raise
        return result

    def _by_node(self) -> list[tuple[Any, list[int]]]:
        """(client, call indexes) per node; one group with the client itself off a cluster."""
        if not is_cluster(self.client):
            return [(self.client, list(range(len(self.calls))))]
        groups: dict[str, tuple[Any, list[int]]] = {}
        for index, call in enumerate(self.calls):
            node = self.client.get_node_from_key(call.key)
            if node.name not in groups:
                groups[node.name] = (self.client.get_redis_connection(node), [])
            groups[node.name][1].append(index)
        return list(groups.values())


def _is_pipeline(target: Any) -> bool:
    return hasattr(target, "command_stack")
