"""Multi-node chaos: three app servers behind nginx, one Redis topology, one S3; two things die.

Three real `tusserver serve` processes share one Redis topology and one moto S3 endpoint,
behind Debian's nginx configured from compose/'s template (round robin over the three). The
topology is either a Sentinel set (1 master, 1 replica, 3 sentinels) or a Cluster (3 primaries
with 2 replicas each). 200 clients upload at once, a few chunks each, resuming on any error like
a real client. Once a third of the chunks are in, one app server (its gunicorn master and
workers) and then the Redis master (Sentinel) or a primary (Cluster) are killed with SIGKILL;
the replica takes over (the killed Sentinel master comes back as its replica), nginx routes
around the dead app.

Every upload must finish with the right sha256, never a 500 (a backend failure is a 503 with
Retry-After; nginx answers 502 for requests that were on the dead server), and, with
`TUSSERVER_REDIS_WAIT_REPLICAS=1`, no offset a 204 acknowledged may go backwards. (Cluster
primaries get two replicas so that the promoted one still has one to confirm writes.)
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
import redis

from tests.ha.resumable import Fleet, Journal, ResumableUpload
from tests.support.live import LiveServer, start_server
from tests.support.nginx import nginx_binary, running_nginx
from tests.support.procstats import descendants
from tests.support.redis_cluster import LocalCluster
from tests.support.redis_sentinel import SentinelSet, sentinel_set
from tests.support.s3 import moto_process, server_env, unique_bucket
from tests.support.tools import missing

UPLOADS = 200
CHUNK = 16 * 1024
CHUNKS = 3
APP_SERVERS = 3


def kill_tree(server: LiveServer) -> None:
    """SIGKILL a whole `tusserver serve`: gunicorn's master and every worker, at once."""
    for pid in [server.pid, *descendants(server.pid)]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait()


@contextmanager
def app_servers(folder: Path, env: dict[str, str]) -> Iterator[list[LiveServer]]:
    servers: list[LiveServer] = []
    try:
        for index in range(APP_SERVERS):
            servers.append(start_server(folder / f"app-{index}", env=env, workers=1))
        yield servers
    finally:
        for server in servers:
            server.stop(signal.SIGTERM, timeout=15)


def promote_after_killing_the_master(sentinels: SentinelSet) -> Callable[[], None]:
    def kill() -> None:
        old = sentinels.kill_master()
        sentinels.wait_for_failover(old)
        sentinels.restart(old)  # WAIT 1 needs a replica again

    return kill


def promote_after_killing_a_primary(cluster: LocalCluster) -> Callable[[], None]:
    """Each primary has two replicas: the promoted one still has one, so WAIT 1 goes on."""

    def kill() -> None:
        victim = next(node for node in cluster.nodes if not node.replica_of)
        followers = [node for node in cluster.nodes if node.replica_of == victim.node_id]
        cluster.kill(victim)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for node in followers:
                with suppress(redis.RedisError):
                    if node.role() == "master":
                        cluster.wait_promoted(node)
                        return
            time.sleep(0.05)
        raise AssertionError("no replica took over")

    return kill


@contextmanager
def redis_topology(kind: str, folder: Path) -> Iterator[tuple[dict[str, str], Callable[[], None]]]:
    """(the app's TUSSERVER_REDIS_* variables, a function that kills the master/a primary)."""
    if kind == "sentinel":
        with sentinel_set(folder) as sentinels:
            yield sentinels.env(), promote_after_killing_the_master(sentinels)
    else:
        with LocalCluster(folder, primaries=3, replicas=2) as cluster:
            env = {"TUSSERVER_REDIS_MODE": "cluster", "TUSSERVER_REDIS_URL": cluster.url}
            yield env, promote_after_killing_a_primary(cluster)


@pytest.mark.parametrize("topology", ["sentinel", "cluster"])
def test_200_uploads_through_nginx_survive_killing_an_app_server_and_a_redis_primary(
    tmp_path: Path, topology: str
) -> None:
    binary = nginx_binary()
    if binary is None:
        missing("nginx is not installed (Debian package `nginx`)")
        raise AssertionError("unreachable")
    with ExitStack() as stack:
        endpoint = stack.enter_context(moto_process())
        redis_env, kill_redis = stack.enter_context(redis_topology(topology, tmp_path / "redis"))
        env = {
            **redis_env,
            **server_env(endpoint, unique_bucket("chaos"), 5 * 1024 * 1024),
            "TUSSERVER_REDIS_WAIT_REPLICAS": "1",
            "TUSSERVER_REDIS_PREFIX": "tuschaos:",
            "TUSSERVER_BEHIND_PROXY": "true",
            "TUSSERVER_SECRET_KEY": "chaos-test-shared-secret-key-0123456789",
        }
        servers = stack.enter_context(app_servers(tmp_path, env))
        nginx = stack.enter_context(
            running_nginx(binary, [int(s.url.rsplit(":", 1)[1]) for s in servers], tmp_path / "ng")
        )

        journal = Journal()
        uploads = [
            ResumableUpload(nginx.url, os.urandom(CHUNK * CHUNKS), CHUNK, journal)
            for _ in range(UPLOADS)
        ]
        fleet = Fleet(uploads, timeout=45, pace=0.05)
        fleet.wait_for_patches(journal, UPLOADS * CHUNKS // 3)
        kill_tree(servers[0])
        at_kill = journal.patches
        kill_redis()
        completed = fleet.join()
        stored = [upload.stored_sha256() for upload in uploads]
        logs = "".join(server.log() for server in servers[1:])

    assert sum(completed) == UPLOADS, journal.statuses
    assert stored == [upload.expected_sha256 for upload in uploads]
    assert not journal.problems, journal.problems
    assert not journal.backwards, journal.backwards
    assert not [what for what in journal.statuses if what.endswith(" 500")], journal.statuses
    assert "Traceback" not in logs
    # The kills landed mid-run: most chunks were still to come. (Requests in flight on the dead
    # app server get 502 from nginx; a Cluster client retries a dead node's calls itself, so
    # there a request may take longer instead of meeting a 503.)
    assert at_kill < UPLOADS * CHUNKS * 2 // 3, at_kill
    if topology == "sentinel":
        assert any(what.endswith(" 503") for what in journal.statuses), journal.statuses
