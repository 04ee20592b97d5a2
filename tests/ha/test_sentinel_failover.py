"""Sentinel failover under uploads: kill -9 the master mid-upload; the app follows the promotion.

A live server (`tusserver serve`, gunicorn) runs in `TUSSERVER_REDIS_MODE=sentinel` on a real
set of 1 master, 1 replica and 3 sentinels. Twenty uploads PATCH chunk after chunk; once a
third of the chunks are in, the master gets SIGKILL. The sentinels promote the replica within
a few seconds, the killed node comes back as the new master's replica, and:

- every upload finishes (the clients resume like real ones) with the right sha256;
- during the switch the server answers 503 with Retry-After, never a 500;
- with `TUSSERVER_REDIS_WAIT_REPLICAS=1`, no acknowledged offset goes backwards: every offset a
  204 reported had reached the replica, which is the master now.

Without WAIT the last commits before the kill may not have reached the replica: a client may
then see HEAD report less than a 204 did (and resends those bytes), or an upload vanish (and
starts over). The test records that (it is the documented promise) but cannot force it.

The passwords path (data nodes and sentinels) runs with WAIT on; the open path without.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.ha.resumable import Fleet, Journal, ResumableUpload
from tests.support.live import start_server
from tests.support.redis_sentinel import sentinel_set

UPLOADS = 20
CHUNK = 32 * 1024
CHUNKS = 8


@pytest.mark.parametrize(
    ("wait_replicas", "passwords"),
    [(1, True), (0, False)],
    ids=["wait-1-with-passwords", "no-wait-open"],
)
def test_kill_master_mid_upload(tmp_path: Path, wait_replicas: int, passwords: bool) -> None:
    secrets = ("data-secret-1", "sentinel-secret-1") if passwords else ("", "")
    with sentinel_set(tmp_path / "sentinel", *secrets) as sentinels:
        env = {
            **sentinels.env(),
            "TUSSERVER_REDIS_WAIT_REPLICAS": str(wait_replicas),
            "TUSSERVER_REDIS_PREFIX": "tusha:",
        }
        server = start_server(tmp_path / "data", env=env, workers=2)
        try:
            journal = Journal()
            uploads = [
                ResumableUpload(server.url, os.urandom(CHUNK * CHUNKS), CHUNK, journal)
                for _ in range(UPLOADS)
            ]
            fleet = Fleet(uploads, timeout=90, pace=0.05)
            fleet.wait_for_patches(journal, UPLOADS * CHUNKS // 3)
            old = sentinels.kill_master()
            sentinels.wait_for_failover(old)
            sentinels.restart(old)  # WAIT 1 needs a replica again
            completed = fleet.join()
            stored = [upload.stored_sha256() for upload in uploads]
            log = server.log()
        finally:
            server.stop(signal.SIGTERM)

    assert all(completed), (completed, journal.statuses)
    assert stored == [upload.expected_sha256 for upload in uploads]
    assert not journal.problems, journal.problems
    assert journal.statuses["PATCH 500"] == 0 and journal.statuses["POST 500"] == 0
    assert "Traceback" not in log
    # The kill landed mid-upload: some requests met the switch.
    switch = sum(n for what, n in journal.statuses.items() if "503" in what or "dropped" in what)
    assert switch > 0, journal.statuses
    if wait_replicas:
        assert not journal.backwards, journal.backwards
    if passwords:
        for secret in secrets:
            assert secret not in log
