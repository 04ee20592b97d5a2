"""The Redis pool under the gevent worker: many greenlets share a few connections.

Run in a child process that gevent monkey-patches (as gunicorn's gevent worker does), against
the session's real Valkey. What a user would notice if this broke: requests of a busy worker
failing with "No connection available" or hanging, instead of waiting their turn for one of the
pool's connections.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    # redis imported before the monkey-patching (by another entry point, or a library that
    # imports it first): redis-py's default queue is then the standard library's.
    from tusserver.state.connect import connect
    from gevent import monkey
    monkey.patch_all()
    import sys
    import gevent
    from gevent.queue import LifoQueue

    client = connect(sys.argv[1], max_connections=3)
    assert client.connection_pool.queue_class is LifoQueue, client.connection_pool.queue_class

    def work(index):
        key = f"pool-test:{index}"
        client.set(key, index, ex=60)
        gevent.sleep(0.01)  # hold nothing while sleeping; the pool must hand connections on
        return int(client.get(key))

    jobs = [gevent.spawn(work, index) for index in range(200)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert [job.value for job in jobs] == list(range(200)), [job.value for job in jobs][:5]
    assert len(client.connection_pool._connections) <= 3
    print("ok")
    """
)


def test_many_greenlets_share_a_small_pool_under_the_event_loop(redis_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, redis_url],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
