"""The Sentinel-mode client (state/connect.py) on a real set: bounded like the other modes.

With the gevent worker one process may run thousands of requests; in every mode a request that
finds all of the process's Redis connections busy waits for one (up to 10 s) instead of failing
at once with a 503. And the pool's connections follow the master through a promotion.
"""

from __future__ import annotations

import threading
import time

import redis

from tests.support.redis_sentinel import MASTER_NAME, SentinelSet
from tusserver.state.connect import connect


def test_a_request_waits_for_a_busy_pool_and_the_pool_follows_a_promotion(
    sentinels: SentinelSet,
) -> None:
    client = connect(
        "",
        2,
        mode="sentinel",
        sentinels=sentinels.sentinel_addresses.split(","),
        sentinel_master=MASTER_NAME,
    )
    assert client.set("ha:probe", "1")
    pool = client.connection_pool
    held = [pool.get_connection(), pool.get_connection()]
    outcome: list[object] = []

    def third_request() -> None:
        try:
            outcome.append(client.get("ha:probe"))
        except redis.RedisError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=third_request)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), f"did not wait for a connection: {outcome}"
    pool.release(held.pop())
    waiter.join(10)
    assert outcome == ["1"]
    pool.release(held.pop())

    old = sentinels.kill_master()
    new = sentinels.wait_for_failover(old)
    answers = []
    for _ in range(20):  # the first calls may still meet the dead master's connections
        try:
            answers.append(client.set("ha:after", "2"))
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    assert answers == [True]
    with sentinels.node_client(new) as promoted:
        assert promoted.get("ha:after") == "2"
