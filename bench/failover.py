"""Failover time: from kill -9 of the Redis master/primary to the first successful PATCH.

    .venv/bin/python bench/failover.py                 # 5 kills per topology, medians
    .venv/bin/python bench/failover.py --kills 3 --only sentinel --no-write

The app runs in this process (Flask's test client, local store) on each topology, started here
from the bundled Valkey binary:

- sentinel: 1 master, 1 replica, 3 sentinels (`down-after-milliseconds` 1000); after each kill
  the killed node comes back as the new master's replica before the next round;
- cluster: 3 primaries with 2 replicas each (`cluster-node-timeout` 1000); each round kills the
  primary of a fresh upload's slot that still has a live replica to take over.

Each round: an upload takes a first PATCH, the node holding it gets SIGKILL, and the client
then does what a tus client does -- HEAD for the offset and a PATCH from it, every 50 ms --
until a PATCH is answered 204. Reports the median, min and max of the kill-to-204 times, and
the answers seen meanwhile (503 with Retry-After is what the server owes a client during the
switch; a 500 would be a bug). The report goes to stdout and to its own section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_section  # noqa: E402
from tests.support.redis_cluster import ClusterNode, LocalCluster  # noqa: E402
from tests.support.redis_sentinel import MASTER_NAME, SentinelSet  # noqa: E402
from tusserver import create_app  # noqa: E402
from tusserver.settings import Settings  # noqa: E402
from tusserver.state.connect import connect_settings  # noqa: E402

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
BODY = b"f" * 4096
POLL = 0.05


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Client:
    """The app on a topology, and a tus client's moves against it."""

    def __init__(self, data_dir: Path, **redis_settings: Any):
        settings = Settings(
            data_dir=data_dir,
            redis_prefix=f"failover:{uuid.uuid4().hex[:8]}:",
            auth="none",
            fsync=False,
            **redis_settings,
        )
        self.app = create_app(settings, redis_client=connect_settings(settings))
        self.http = self.app.test_client()
        self.prefix = settings.redis_prefix
        self.seen: Counter[str] = Counter()

    def started_upload(self) -> str:
        created = self.http.post("/files/", headers={**TUS, "Upload-Length": str(1 << 30)})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        first = self.http.patch(url, data=BODY, headers={**OCTET, "Upload-Offset": "0"})
        assert first.status_code == 204, first.text
        return url

    def key_of(self, url: str) -> str:
        return f"{self.prefix}upload:{{{url.rstrip('/').rsplit('/', 1)[-1]}}}"

    def resume_until_accepted(self, url: str, timeout: float = 60) -> float:
        """HEAD + PATCH every `POLL` s until a PATCH is accepted; seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            head = self.http.head(url, headers=TUS)
            self._saw("HEAD", head)
            if head.status_code == 200:
                offset = head.headers["Upload-Offset"]
                patch = self.http.patch(url, data=BODY, headers={**OCTET, "Upload-Offset": offset})
                self._saw("PATCH", patch)
                if patch.status_code == 204:
                    return time.monotonic() - start
            time.sleep(POLL)
        raise RuntimeError(f"no PATCH accepted within {timeout}s: {self.seen}")

    def _saw(self, method: str, response: Any) -> None:
        status = response.status_code
        if status == 503 and "Retry-After" not in response.headers:
            self.seen[f"{method} 503 without Retry-After"] += 1
        self.seen[f"{method} {status}"] += 1

    def close(self) -> None:
        self.app.extensions["tusserver"].keeper.stop()


def sentinel_rounds(base: Path, kills: int) -> tuple[list[float], Counter[str]]:
    sentinels = SentinelSet(base / "sentinel").start()
    client = Client(
        base / "sentinel-app",
        redis_mode="sentinel",
        redis_sentinels=tuple(sentinels.sentinel_addresses.split(",")),
        redis_sentinel_master=MASTER_NAME,
    )
    times = []
    try:
        for round_index in range(kills):
            url = client.started_upload()
            old = sentinels.kill_master()
            times.append(client.resume_until_accepted(url))
            say(f"sentinel kill {round_index + 1}: {times[-1]:.2f} s")
            sentinels.wait_for_failover(old)
            sentinels.restart(old)
            sentinels.wait_until_ready()
    finally:
        client.close()
        sentinels.stop()
    return times, client.seen


def cluster_rounds(base: Path, kills: int) -> tuple[list[float], Counter[str]]:
    cluster = LocalCluster(base / "cluster", primaries=3, replicas=2).start()
    client = Client(base / "cluster-app", redis_mode="cluster", redis_url=cluster.url)
    times = []
    try:
        for round_index in range(kills):
            url, primary = _upload_on_a_primary_with_replicas(client, cluster)
            cluster.kill(primary)
            times.append(client.resume_until_accepted(url))
            say(f"cluster kill {round_index + 1}: {times[-1]:.2f} s")
            promoted = cluster.primary_of(client.key_of(url))
            cluster.wait_promoted(promoted)  # the fixture learns the new layout
    finally:
        client.close()
        cluster.stop()
    return times, client.seen


def _upload_on_a_primary_with_replicas(
    client: Client, cluster: LocalCluster
) -> tuple[str, ClusterNode]:
    for _ in range(100):
        url = client.started_upload()
        primary = cluster.primary_of(client.key_of(url))
        if _connected_replicas(primary) >= 1:
            return url, primary
    raise RuntimeError("no primary with a live replica left")


def _connected_replicas(node: ClusterNode) -> int:
    with contextlib.suppress(redis.RedisError), node.client() as plain:
        role = plain.execute_command("ROLE")
        return len(role[2]) if role[0] == "master" else 0
    return 0


def report(results: dict[str, tuple[list[float], Counter[str]]], kills: int) -> str:
    lines = [
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: {kills} kills per "
        "topology; time from SIGKILL of the node holding the upload to the first PATCH "
        f"answered 204 (HEAD + PATCH every {POLL * 1000:.0f} ms). App in process.",
        "",
        "| Topology | median | min | max | answers during the switch |",
        "|---|---:|---:|---:|---|",
    ]
    for name, (times, seen) in results.items():
        answers = ", ".join(f"{what} x{count}" for what, count in sorted(seen.items()))
        lines.append(
            f"| {name} | {statistics.median(times):.2f} s | {min(times):.2f} s | "
            f"{max(times):.2f} s | {answers} |"
        )
    lines += [
        "",
        "Sentinel: down-after-milliseconds 1000, then a vote and the promotion; cluster: "
        "cluster-node-timeout 1000, then the replica's election. Both are settings of the "
        "Redis deployment, not of tusserver.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--only", choices=["sentinel", "cluster"])
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    runners: dict[str, Callable[[Path, int], tuple[list[float], Counter[str]]]] = {
        "sentinel": sentinel_rounds,
        "cluster": cluster_rounds,
    }
    results = {}
    with tempfile.TemporaryDirectory(prefix="tus-failover-") as folder:
        for name, run in runners.items():
            if args.only and name != args.only:
                continue
            results[name] = run(Path(folder), args.kills)
    text = report(results, args.kills)
    print(text)
    if not args.no_write:
        write_section("failover", "## Redis failover: kill to first accepted PATCH\n\n" + text)


if __name__ == "__main__":
    main()
