"""The cost of accounts per request: the same server with `TUSSERVER_AUTH=none` and with a
bearer token under `TUSSERVER_AUTH=required`, measured in one run, alternating.

    .venv/bin/python bench/auth_cost.py [--rounds 3] [--seconds 5] [--uploads 24]

Two numbers, each the median over the rounds, and their ratio (target: >= 0.95):
- tus HEAD requests per second (16 keep-alive connections from 4 client processes);
- upload MiB/s of 5 MiB uploads sent as one PATCH each (4 uploads at a time).
Both servers run side by side on one embedded Redis, with fsync off so the disk's noise does
not hide the few Redis round trips being measured; the client processes are forked first.

On a shared machine the rates swing with whatever else runs, so the CPU time the server (its
gunicorn tree plus the Redis it uses) spends per request is reported too: it is what auth
actually adds, and is steady under load. Its ratio is none's CPU over the token's (>= 0.95:
a token costs at most 5% more CPU per request).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import client, servers  # noqa: E402
from tests.support.procstats import tree_cpu  # noqa: E402

MiB = 1024 * 1024
PATCH_SIZE = 5 * MiB
PROCESSES = 4
CONNECTIONS_PER_PROCESS = 4


def make_token(redis_url: str, prefix: str) -> str:
    """A user and an API token on the accounts server, made through the account rules."""
    from tusserver.auth.accounts import Accounts
    from tusserver.settings import Settings
    from tusserver.state.accounts import AccountStore
    from tusserver.state.redis import connect

    accounts = Accounts(AccountStore(connect(redis_url), prefix), Settings())
    accounts.create_user("bench", "bench password", "user")
    token, _ = accounts.issue_token("bench", "bench")
    return token


class CpuMeter:
    """CPU seconds spent by a server's process tree and the Redis it uses, between two points."""

    def __init__(self, server: servers.Server, redis_pid: int):
        self.pids = (server.pid, redis_pid)

    def __enter__(self) -> CpuMeter:
        self.start = sum(tree_cpu(pid) for pid in self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = sum(tree_cpu(pid) for pid in self.pids) - self.start


REDIS_PID = [0]


def head_rate(
    pool: client.ClientPool, server: servers.Server, auth: dict[str, str], seconds: float
) -> tuple[float, float]:
    """(HEAD requests/s, CPU µs per HEAD)."""
    made = pool.run(
        [("upload", {"host": "127.0.0.1", "port": server.port, "size": 1, "extra_headers": auth})]
    )
    headers = {**client.TUS, **auth}
    job = (
        "small",
        {
            "host": "127.0.0.1",
            "port": server.port,
            "method": "HEAD",
            "path": made[0]["path"],
            "headers": headers,
            "seconds": seconds,
            "connections": CONNECTIONS_PER_PROCESS,
        },
    )
    with CpuMeter(server, REDIS_PID[0]) as meter:
        results = pool.run([job] * PROCESSES)
    if any(result["errors"] for result in results):
        raise RuntimeError(f"{server.name}: HEAD answered errors")
    count = sum(len(result["latencies"]) for result in results)
    span = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return count / span, meter.used / count * 1e6


def upload_rate(
    pool: client.ClientPool, server: servers.Server, auth: dict[str, str], uploads: int
) -> tuple[float, float]:
    """(MiB/s, CPU s per GiB) of 5 MiB uploads, PROCESSES at a time; only the batches' own
    time counts."""
    job = (
        "upload",
        {"host": "127.0.0.1", "port": server.port, "size": PATCH_SIZE, "extra_headers": auth},
    )
    sent, busy = 0, 0.0
    with CpuMeter(server, REDIS_PID[0]) as meter:
        for _ in range(max(uploads // PROCESSES, 1)):
            results = pool.run([job] * PROCESSES)
            sent += sum(result["bytes"] for result in results)
            busy += max(r["ended"] for r in results) - min(r["started"] for r in results)
    return sent / MiB / busy, meter.used / (sent / 1024**3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per HEAD run")
    parser.add_argument("--uploads", type=int, default=24, help="5 MiB uploads per PATCH run")
    args = parser.parse_args(argv)

    pool = client.ClientPool(PROCESSES).start()  # forked before any thread starts
    from tusserver.embedded_redis import EmbeddedRedis

    workers, threads = servers.serve_defaults()
    with tempfile.TemporaryDirectory(prefix="tus-auth-bench-") as temp:
        base = Path(temp)
        redis = EmbeddedRedis(base / "redis", persistent=False).start()
        REDIS_PID[0] = redis.process.pid if redis.process else 0
        started: list[servers.Server] = []
        try:
            open_server = servers.start_ours("open", base, redis, False, workers, threads)
            started.append(open_server)
            auth_server = servers.start_ours(
                "auth", base, redis, False, workers, threads, {"TUSSERVER_AUTH": "required"}
            )
            started.append(auth_server)
            token = make_token(redis.url, "bench:auth:")
            contenders = [(open_server, {}), (auth_server, {"Authorization": f"Bearer {token}"})]
            heads: dict[str, list[float]] = {"open": [], "auth": []}
            mibps: dict[str, list[float]] = {"open": [], "auth": []}
            head_cpu: dict[str, list[float]] = {"open": [], "auth": []}
            upload_cpu: dict[str, list[float]] = {"open": [], "auth": []}
            for round_number in range(args.rounds):
                order = contenders if round_number % 2 == 0 else contenders[::-1]
                for server, auth in order:
                    rate, cpu = head_rate(pool, server, auth, args.seconds)
                    heads[server.name].append(rate)
                    head_cpu[server.name].append(cpu)
                    rate, cpu = upload_rate(pool, server, auth, args.uploads)
                    mibps[server.name].append(rate)
                    upload_cpu[server.name].append(cpu)
                print(
                    f"round {round_number + 1}: HEAD/s open {heads['open'][-1]:.0f} "
                    f"auth {heads['auth'][-1]:.0f}; MiB/s open {mibps['open'][-1]:.0f} "
                    f"auth {mibps['auth'][-1]:.0f}",
                    flush=True,
                )
        finally:
            for server in started:
                server.stop()
            redis.stop()
            pool.close()
    print()
    print(f"workers={workers} threads={threads}, fsync off, {args.rounds} rounds, medians")
    print("| measure | TUSSERVER_AUTH=none | bearer token | ratio |")
    print("|---|---:|---:|---:|")
    for label, table, digits in (
        ("tus HEAD requests/s", heads, 0),
        ("5 MiB PATCH upload MiB/s", mibps, 0),
    ):
        plain, guarded = statistics.median(table["open"]), statistics.median(table["auth"])
        print(f"| {label} | {plain:.{digits}f} | {guarded:.{digits}f} | {guarded / plain:.2f}x |")
    for label, table in (("CPU µs per HEAD", head_cpu), ("CPU s per GiB uploaded", upload_cpu)):
        plain, guarded = statistics.median(table["open"]), statistics.median(table["auth"])
        print(f"| {label} | {plain:.1f} | {guarded:.1f} | {plain / guarded:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
