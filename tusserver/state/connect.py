"""The one place that builds a Redis client, for each deployment mode (`TUSSERVER_REDIS_MODE`).

- `single`: one server (`redis.Redis` over a bounded, blocking pool);
- `cluster`: a Redis/Valkey Cluster reached through any node named in the URL, or the first
  that answers of several comma-separated URLs (`redis.cluster.RedisCluster`, which follows
  MOVED/ASK and failovers by itself; the first URL gives the credentials);
- `sentinel`: the master a set of sentinels names (`Sentinel(...).master_for(...)`), followed
  across promotions.

Every caller (the app, the CLI, tests, benchmarks) gets its client here, so the timeouts and
pool limits are the same whatever the topology, and the code above works unchanged on each.
"""

from __future__ import annotations

from collections.abc import Sequence
from queue import LifoQueue
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..offload import event_loop_active
from .addresses import MODES, parse_sentinels

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["MODES", "REDIS_ERRORS", "Client", "connect", "connect_settings", "parse_sentinels"]


REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What a client of any mode raises when Redis fails: the cluster client also raises
`RedisClusterException` (no node reachable, slots not covered), which is not a `RedisError`."""

Client: TypeAlias = "redis.Redis | RedisCluster"
"""What the state layer talks to: both answer the same commands, scripts and pipelines."""

# Short timeouts: an outage must be a quick 503, not a hung request.
_TIMEOUTS: dict[str, Any] = {
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
    "retry_on_timeout": False,
}


POOL_SIZE = 256
"""Redis connections per process (per node on a cluster). Under the gevent worker a greenlet
holds its connection from sending a command until the event loop gets back to it with the
answer, so when the loop is busy with thousands of slow uploads a round trip holds a connection
for the loop's latency, not Redis's. With 64, 2,000 slow uploads on a starved machine ran out
(requests waited 10 s for one, then answered 503); 256 ran out less often in the same
conditions. Valkey holds thousands of clients cheaply; two workers take 512 of its 10,000."""


def connect(
    url: str,
    max_connections: int = POOL_SIZE,
    *,
    mode: str = "single",
    sentinels: Sequence[str] = (),
    sentinel_master: str = "",
    sentinel_password: str = "",
    password: str = "",
) -> Client:
    """A client for `mode` (see the module docstring), with short timeouts and a bounded pool.

    The pool is bounded and blocking: under the gevent worker thousands of requests of one
    process may want Redis at the same moment, and each would otherwise open a connection of
    its own (redis-py's default pool refuses past 100). A request waits up to 10 s for one of
    `max_connections` (per node on a cluster), then fails like any other Redis outage.

    `password` is the data nodes' password when the URL carries none; `sentinel_password` is
    the sentinels' own (they often have a different one, or none).
    """
    if mode not in MODES:
        raise ValueError(f"unknown Redis mode {mode!r}; expected one of {', '.join(MODES)}")
    auth = {"password": password} if password and not urlsplit(url).password else {}
    if mode == "cluster":
        first, *others = [part.strip() for part in url.split(",") if part.strip()]
        return RedisCluster.from_url(
            first,
            startup_nodes=[_cluster_node(other) for other in others],
            decode_responses=True,
            connection_pool_class=redis.BlockingConnectionPool,
            max_connections=max_connections,
            timeout=10,
            **_TIMEOUTS,
            **auth,
        )
    if mode == "sentinel":
        return _sentinel_master(
            url, sentinels, sentinel_master, sentinel_password, password, max_connections
        )
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        queue_class=pool_queue_class(),
        decode_responses=True,
        health_check_interval=30,
        **_TIMEOUTS,
        **auth,
    )
    return redis.Redis(connection_pool=pool)


def pool_queue_class() -> type:
    """The queue the pool keeps its idle connections in: gevent's own under the event loop.

    redis-py's default, the standard library's `LifoQueue` (bound when redis is imported: if
    that was before the monkey-patching, it stays the unpatched one), takes a
    `threading.Condition` and
    its lock for every connection taken and given back; under the gevent worker those are
    monkey-patched locks written in Python, and with a few thousand slow uploads per worker
    (every PATCH takes and returns a connection twice, the lock keeper once per tick) they were
    6 % of the worker's CPU. gevent's `LifoQueue` is compiled and waits on the event loop
    directly. Elsewhere (threads, the CLI) the standard one is right.
    """
    if event_loop_active():
        from gevent.queue import LifoQueue as GeventLifoQueue

        return GeventLifoQueue
    return LifoQueue


def _cluster_node(url: str) -> ClusterNode:
    parts = urlsplit(url)
    return ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379)


def connect_settings(settings: Settings, max_connections: int = POOL_SIZE) -> Client:
    """The client the settings describe (`TUSSERVER_REDIS_*`)."""
    return connect(
        settings.redis_url or "redis://127.0.0.1:6379/0",
        max_connections,
        mode=settings.redis_mode,
        sentinels=settings.redis_sentinels,
        sentinel_master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password,
        password=settings.redis_password,
    )


def _sentinel_master(
    url: str,
    sentinels: Sequence[str],
    master: str,
    sentinel_password: str,
    password: str,
    max_connections: int,
) -> redis.Redis:
    """The master's client; it asks the sentinels again after a failover.

    The data nodes' password and database come from the URL when it has them (its host is not
    used: the sentinels say where the master is), else from `password`.
    """
    if not sentinels or not master:
        raise ValueError("sentinel mode needs the sentinels and the master's name")
    parts = urlsplit(url) if url else None
    data_password = (parts.password if parts else None) or password or None
    db = int((parts.path or "/0").strip("/") or 0) if parts else 0
    # redis-py's Sentinel takes no `retry_on_timeout` any more (deprecated): timeouts only.
    timeouts = {key: value for key, value in _TIMEOUTS.items() if key != "retry_on_timeout"}
    sentinel_kwargs: dict[str, Any] = {**timeouts, "decode_responses": True}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = Sentinel(
        parse_sentinels(sentinels),
        sentinel_kwargs=sentinel_kwargs,
        password=data_password,
        db=db,
        decode_responses=True,
        **timeouts,
    )
    return sentinel.master_for(
        master,
        connection_pool_class=BlockingSentinelConnectionPool,
        max_connections=max_connections,
        timeout=10,
    )


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The master's connections, bounded and blocking like the other modes' pools.

    redis-py's own Sentinel pool refuses a connection past `max_connections` at once
    (`MaxConnectionsError`): under the gevent worker a busy process would answer 503s at
    ordinary load. Here, as in `single` mode, a request waits up to `timeout` seconds for a
    connection. Connections still go wherever the sentinels say the master is, and one that
    pointed at a demoted master is dropped on its way back into the pool.
    """
