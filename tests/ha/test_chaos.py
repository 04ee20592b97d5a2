"""Multi-node chaos: three app servers behind nginx, one Sentinel set, one S3; two of them die.

Three real `tusserver serve` processes share a Sentinel set (1 master, 1 replica, 3 sentinels)
and one moto S3 endpoint, behind Debian's nginx configured from compose/'s template (round robin
over the three). 200 clients upload at once, a few chunks each, resuming on any error like a
real client. Once a third of the chunks are in, one app server (its gunicorn master and
workers) and the Redis master are killed with SIGKILL at the same moment; the sentinels promote
the replica, the killed Redis comes back as its replica, nginx routes around the dead app.

Every upload must finish with the right sha256, never a 500 (a backend failure is a 503 with
Retry-After; nginx answers 502 for requests that were on the dead server), and, with
`TUSSERVER_REDIS_WAIT_REPLICAS=1`, no offset a 204 acknowledged may go backwards.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from tests.ha.resumable import Fleet, Journal, ResumableUpload
from tests.support.live import LiveServer, start_server
from tests.support.nginx import nginx_binary, running_nginx
from tests.support.procstats import descendants
from tests.support.redis_sentinel import sentinel_set
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


def test_200_uploads_through_nginx_survive_killing_an_app_server_and_the_redis_master(
    tmp_path: Path,
) -> None:
    binary = nginx_binary()
    if binary is None:
        missing("nginx is not installed (Debian package `nginx`)")
        raise AssertionError("unreachable")
    with ExitStack() as stack:
        endpoint = stack.enter_context(moto_process())
        sentinels = stack.enter_context(sentinel_set(tmp_path / "sentinel"))
        env = {
            **sentinels.env(),
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
        victim = servers[0]
        kill_tree(victim)
        old = sentinels.kill_master()
        sentinels.wait_for_failover(old)
        sentinels.restart(old)
        completed = fleet.join()
        stored = [upload.stored_sha256() for upload in uploads]
        logs = "".join(server.log() for server in servers[1:])

    assert sum(completed) == UPLOADS, journal.statuses
    assert stored == [upload.expected_sha256 for upload in uploads]
    assert not journal.problems, journal.problems
    assert not journal.backwards, journal.backwards
    assert not [what for what in journal.statuses if what.endswith(" 500")], journal.statuses
    assert "Traceback" not in logs
    # Both failures were felt: requests met the dead app server (502 from nginx or dropped)
    # and the Redis switch (503).
    assert any(what.endswith((" 502", " dropped")) for what in journal.statuses), journal.statuses
    assert any(what.endswith(" 503") for what in journal.statuses), journal.statuses
