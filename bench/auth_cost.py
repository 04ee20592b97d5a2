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

`--in-process` also measures the request path alone, through Flask's test client in this
process (no sockets, no gunicorn): CPU per HEAD and per 5 MiB PATCH, alternating the modes,
many rounds. With other work on the machine this is the steadiest number of the three.
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
    from tusserver.state.connect import connect

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


def in_process(rounds: int, redis_url: str, base: Path) -> dict[str, dict[str, float]]:
    """Median CPU µs per HEAD and per 5 MiB PATCH through the app itself, per mode."""
    import time

    from tusserver import create_app
    from tusserver.settings import Settings

    body = bytes(PATCH_SIZE)
    contenders = {}
    for mode in ("none", "required"):
        settings = Settings(
            data_dir=base / f"inproc-{mode}",
            redis_url=redis_url,
            redis_prefix=f"bench:inproc-{mode}:",
            auth=mode,
            fsync=False,
            metrics_enabled=False,
        )
        app = create_app(settings)
        headers = dict(client.TUS)
        if mode == "required":
            accounts = app.extensions["tusserver"].accounts
            accounts.create_user("bench", "bench password")
            token, _ = accounts.issue_token("bench")
            headers["Authorization"] = f"Bearer {token}"
        test_client = app.test_client()
        location = test_client.post("/files/", headers={**headers, "Upload-Length": "1"})
        contenders[mode] = (test_client, location.headers["Location"], headers)
        for _ in range(200):  # warm up: imports, caches, connections
            test_client.head(contenders[mode][1], headers=headers)
    cpu: dict[str, dict[str, list[float]]] = {m: {"head": [], "patch": []} for m in contenders}
    for round_number in range(rounds):
        order = ["none", "required"] if round_number % 2 == 0 else ["required", "none"]
        for mode in order:
            test_client, location, headers = contenders[mode]
            started = time.process_time()
            for _ in range(500):
                test_client.head(location, headers=headers)
            cpu[mode]["head"].append((time.process_time() - started) / 500 * 1e6)
            patch_headers = {
                **headers,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            }
            started = time.process_time()
            for _ in range(4):
                made = test_client.post(
                    "/files/", headers={**headers, "Upload-Length": str(PATCH_SIZE)}
                )
                done = test_client.patch(made.headers["Location"], data=body, headers=patch_headers)
                assert done.status_code == 204, done.status_code
                test_client.delete(made.headers["Location"], headers=headers)
            cpu[mode]["patch"].append((time.process_time() - started) / 4 * 1e6)
    return {m: {k: statistics.median(v) for k, v in kinds.items()} for m, kinds in cpu.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per HEAD run")
    parser.add_argument("--uploads", type=int, default=24, help="5 MiB uploads per PATCH run")
    parser.add_argument(
        "--in-process", action="store_true", help="also the request path alone (CPU, 20 rounds)"
    )
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
            inproc = in_process(20, redis.url, base) if args.in_process else None
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
    if inproc:
        for label, kind in (
            ("in-process CPU µs per HEAD", "head"),
            ("in-process CPU µs per 5 MiB PATCH", "patch"),
        ):
            plain, guarded = inproc["none"][kind], inproc["required"][kind]
            print(f"| {label} | {plain:.0f} | {guarded:.0f} | {plain / guarded:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
