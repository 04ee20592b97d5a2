"""Thousands of slow clients: tusserver and @tus/server under the same load, in one run.

    .venv/bin/python bench/slow_clients.py                 # 2,000 slow uploads + 10,000 idle
    .venv/bin/python bench/slow_clients.py --quick         # 200 + 1,000, shorter
    .venv/bin/python bench/slow_clients.py --candidates gevent,gthread --no-node

For each server in turn (alone on the machine) `tests/support/slow_load.py` opens the idle
keep-alive connections, starts the trickling uploads, and then, for a measured window, runs a fresh
client over and over (create + 1 MiB PATCH + HEAD + 1 MiB GET) while it samples the RSS and CPU of
the server's whole process tree (tusserver: the gunicorn master, its workers and the embedded
Valkey it starts; @tus/server: the Node process). It reports the fresh client's p50/p99, the RSS,
how many uploads the server acknowledged progress for, and how many idle connections the server
still held at the end. The report goes to stdout and to its own section of bench/RESULTS.md
(`--no-write` to leave that file alone).

Everything runs on 127.0.0.1 (the load spreads its sockets over 127.0.0.2-127.0.0.9 as source
addresses, so 12,000 connections never run out of local ports) with free ports, and the
servers' data live in a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import servers  # noqa: E402
from bench.results_file import write_section  # noqa: E402
from tests.support.procstats import tree_cpu, tree_rss  # noqa: E402
from tests.support.slow_load import (  # noqa: E402
    PHASES,
    LoadResult,
    MiB,
    raise_open_file_limit,
    run_load,
)
from tusserver.embedded_redis import SOCKET_NAME  # noqa: E402

TARGET_P99 = 1.0
TARGET_RSS = 600 * MiB


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_ours(
    name: str, base: Path, worker_class: str, workers: int, threads: int, env: dict[str, str]
) -> servers.Server:
    """`tusserver serve` with its embedded Valkey (so Valkey is part of the measured tree)."""
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    port = servers.free_port()
    full_env = servers._clean_env()
    full_env.update(
        {"TUSSERVER_DATA_DIR": str(data), "TUSSERVER_AUTH": "none", "PYTHONUNBUFFERED": "1"}
    )
    full_env.update(env)
    command = [sys.executable, "-m", "tusserver", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    command += ["--worker-class", worker_class]
    log_path = base / f"{name}.log"
    process = servers._popen(command, full_env, log_path, ROOT)
    server = servers.Server(name, port, process, data / "uploads", log_path, workers, "ours")
    return servers._wait_ready(server, "GET", "/api/health", 200)


def valkey_of(server: servers.Server) -> Any:
    """A client of the embedded Valkey `tusserver serve` started (its socket in the data dir),
    or None (another server, or a TCP fallback)."""
    sockets = sorted(server.data_dir.parent.glob(f"**/{SOCKET_NAME}"))
    if not sockets:
        return None
    import redis

    return redis.Redis(unix_socket_path=str(sockets[0]), socket_timeout=10)


def watch_fsync_stalls(server: servers.Server) -> Any:
    """Ask the embedded Valkey to record its AOF fsyncs slower than 100 ms (`LATENCY LATEST`):
    with `appendfsync always` it answers nobody while one runs, so every request that needs
    Redis waits for the disk."""
    client = valkey_of(server)
    if client is not None:
        with contextlib.suppress(Exception):
            client.config_set("latency-monitor-threshold", 100)
            client.execute_command("LATENCY", "RESET")
            return client
    return None


def fsync_stalls(client: Any) -> str | None:
    """'max N ms (latest N ms)' of the AOF fsyncs over 100 ms since `watch_fsync_stalls`."""
    if client is None:
        return None
    with contextlib.suppress(Exception):
        for event, _when, latest, worst, *_ in client.execute_command("LATENCY", "LATEST"):
            name = event.decode() if isinstance(event, bytes) else str(event)
            if name.startswith("aof-fsync"):
                return f"Valkey AOF fsync over 100 ms: max {worst} ms (latest {latest} ms)"
        return "Valkey AOF fsync: none over 100 ms"
    return None


def measure(server: servers.Server, args: argparse.Namespace, path: str) -> LoadResult:
    say(
        f"{server.name}: {args.idle} idle connections, {args.uploads} uploads at "
        f"{args.rate // 1024} KiB/s, {args.seconds:.0f} s window"
    )
    idle_rss = tree_rss(server.pid)
    valkey = watch_fsync_stalls(server) if server.kind == "ours" else None
    result = run_load(
        "127.0.0.1",
        server.port,
        uploads=args.uploads,
        idle=args.idle,
        rate=args.rate,
        patch_bytes=args.patch_bytes,
        ramp=args.ramp,
        seconds=args.seconds,
        path=path,
        rss=lambda: tree_rss(server.pid),
        cpu=lambda: tree_cpu(server.pid),
    )
    summary = result.summary()
    say(
        f"{server.name}: p50 {summary['p50'] * 1000:.0f} ms, p99 {summary['p99'] * 1000:.0f} ms "
        f"({summary['probes']} fresh clients, {summary['probe_errors']} failed), RSS peak "
        f"{summary['rss_peak'] / MiB:.0f} MiB (idle {idle_rss / MiB:.0f}), progressed "
        f"{summary['progressed']}/{summary['uploads']}, idle held {summary['idle_held']}/"
        f"{args.idle}, CPU {summary['cpu_cores']:.2f} cores, errors {summary['errors']}"
    )
    if result.probe_latencies:
        timeline = " ".join(f"{latency * 1000:.0f}" for latency in result.probe_latencies)
        say(f"  fresh-client latencies in order, ms: {timeline}")
    progressed = sum(b - a for a, b in zip(result.acked_start, result.acked_end, strict=True))
    if progressed:
        per_mib = result.cpu_seconds / (progressed / MiB) * 1000
        say(
            f"  server CPU per MiB acknowledged: {per_mib:.0f} ms "
            f"({progressed / MiB:.0f} MiB in the window)"
        )
    result.fsync_stalls = fsync_stalls(valkey)  # type: ignore[attr-defined]
    for line in diagnosis(result):
        say(f"  {line}")
    if result.probe_errors:
        say(f"  first fresh-client error: {result.probe_errors[0]}")
    result.idle_rss = idle_rss  # type: ignore[attr-defined]
    return result


def diagnosis(result: LoadResult) -> list[str]:
    """Where the slow fresh clients waited, and whether the load generator kept time."""
    lines = []
    slow = [
        (latency, phases, at)
        for latency, phases, at in zip(
            result.probe_latencies, result.probe_phases, result.probe_starts, strict=False
        )
        if latency > TARGET_P99
    ]
    if slow:
        worst = ", ".join(
            f"{latency * 1000:.0f} ms at {at:.1f} s = "
            + " + ".join(f"{name} {p * 1000:.0f}" for name, p in zip(PHASES, phases, strict=False))
            for latency, phases, at in sorted(slow, reverse=True)[:5]
        )
        lines.append(f"fresh clients over {TARGET_P99:.0f} s, by step (ms): {worst}")
        when = " ".join(f"{at:.1f}" for _latency, _phases, at in sorted(slow, key=lambda s: s[2]))
        lines.append(f"they started at (s into the window): {when}")
    if result.probe_phases:
        medians = [
            statistics.median(p[i] for p in result.probe_phases if len(p) > i)
            for i in range(len(PHASES))
        ]
        lines.append(
            "median step, ms: "
            + ", ".join(f"{n} {m * 1000:.1f}" for n, m in zip(PHASES, medians, strict=False))
        )
    stalls = getattr(result, "fsync_stalls", None)
    if stalls:
        lines.append(stalls)
    if result.load_lag:
        lag = sorted(result.load_lag)
        lines.append(
            f"load generator's loop lag: median {statistics.median(lag) * 1000:.1f} ms, p99 "
            f"{lag[int(len(lag) * 0.99)] * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms"
        )
    return lines


def report(results: dict[str, LoadResult], args: argparse.Namespace, notes: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    lines = [
        "## Slow clients (`bench/slow_clients.py`)",
        "",
        f"Run of {now} on {os.cpu_count()} cores ({platform.python_version()}), load average "
        f"{args.load_at_start:.1f} at the start and {load:.1f} at the end. Each server alone "
        f"in turn: {args.idle:,} idle keep-alive "
        f"connections (one OPTIONS each, then nothing), then {args.uploads:,} uploads each "
        f"trickling {args.rate // 1024} KiB/s in {args.patch_bytes // 1024} KiB PATCHes "
        f"(4 KiB every {4096 / args.rate * 1000:.0f} ms), {args.ramp:.0f} s to settle, then a "
        f"{args.seconds:.0f} s window during which a fresh client runs back to back (new "
        "connection, create + 1 MiB PATCH + HEAD + 1 MiB GET, checked) and the server's "
        "process tree is sampled every 0.5 s.",
        "",
        "| server | fresh client p50 / p99 / max | fresh clients (failed) | RSS peak (median) "
        "| uploads progressed | median / min progress | idle held at end | server CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        s = result.summary()
        lines.append(
            f"| {name} | {s['p50'] * 1000:.0f} / {s['p99'] * 1000:.0f} / {s['max'] * 1000:.0f} ms "
            f"| {s['probes']} ({s['probe_errors']}) "
            f"| {s['rss_peak'] / MiB:.0f} MiB ({s['rss_median'] / MiB:.0f}) "
            f"| {s['progressed']:,} / {s['uploads']:,} "
            f"| {s['median_progress'] / 1024:.0f} / {s['min_progress'] / 1024:.0f} KiB "
            f"(sent {s['sent_median'] / 1024:.0f}) "
            f"| {s['idle_held']:,} / {args.idle:,} | {s['cpu_cores']:.2f} cores |"
        )
    lines += [
        "",
        f"Targets: fresh-client p99 < {TARGET_P99:.0f} s, RSS of the whole tree < "
        f"{TARGET_RSS // MiB} MiB, every upload progressing (its acknowledged offset moved "
        "during the window; one PATCH takes "
        f"{args.patch_bytes / args.rate:.0f} s at this rate), the idle connections held.",
        "",
    ]
    for name, result in results.items():
        s = result.summary()
        if s["errors"]:
            lines.append(f"- {name}: load errors {s['errors']}")
        if result.probe_errors:
            lines.append(f"- {name}: first fresh-client error: `{result.probe_errors[0]}`")
        lines += [f"- {name}: {line}" for line in diagnosis(result)]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--rate", type=int, default=16 * 1024, help="bytes/s per upload")
    parser.add_argument("--patch-bytes", type=int, default=128 * 1024)
    parser.add_argument("--ramp", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--quick", action="store_true", help="200 uploads, 1000 idle, 20 s")
    parser.add_argument(
        "--candidates", default="gevent", help="tusserver worker classes to run: gevent,gthread"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--gthread-threads",
        type=int,
        default=0,
        help="threads per gthread worker (default: enough for every upload plus the prober)",
    )
    parser.add_argument("--no-node", action="store_true")
    parser.add_argument("--fsync", choices=("true", "false"), default="true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--log-level", default="WARNING", help="tusserver's TUSSERVER_LOG_LEVEL")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (servers' logs, data)"
    )
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.idle, args.ramp, args.seconds = 200, 1000, 8.0, 20.0
    args.uploads = min(args.uploads, 5000)  # bounded: this is a benchmark, not a flood
    args.idle = min(args.idle, 12000)
    raise_open_file_limit()
    args.load_at_start = os.getloadavg()[0]
    say(f"load average at the start: {args.load_at_start:.2f}")
    began = time.monotonic()

    notes: list[str] = []
    results: dict[str, LoadResult] = {}
    with _work_folder(args.keep) as folder:
        base = Path(folder)
        for candidate in [c.strip() for c in args.candidates.split(",") if c.strip()]:
            threads = args.gthread_threads or (args.uploads // args.workers + 64)
            name = f"tusserver ({candidate})"
            env = {"TUSSERVER_FSYNC": args.fsync, "TUSSERVER_LOG_LEVEL": args.log_level}
            server = start_ours(candidate, base, candidate, args.workers, threads, env)
            try:
                results[name] = measure(server, args, "/files")
            finally:
                server.stop()
            if candidate == "gthread":
                notes.append(
                    f"tusserver (gthread): {args.workers} workers x {threads} threads (one "
                    "thread per slow upload)"
                )
            time.sleep(2)
        notes.append(
            f"tusserver: {args.workers} gevent workers, fsync {args.fsync}, embedded Valkey "
            "counted in its tree; defaults otherwise (keep-alive 75 s, min rate 1 KiB/s)"
        )
        if not args.no_node:
            folder_node, message = servers.install_node(base)
            if folder_node is None:
                notes.append(message)
            else:
                notes.append(
                    f"@tus/server: {message}, a cluster of {args.workers} processes (as many "
                    "as ours has workers), defaults (Node closes idle keep-alive connections "
                    "after 5 s)"
                )
                server = servers.start_node("node", base, folder_node, args.workers)
                try:
                    results["@tus/server"] = measure(server, args, "/files")
                finally:
                    server.stop()
    text = report(results, args, notes)
    print(text)
    say(f"took {(time.monotonic() - began) / 60:.1f} min")
    if not args.no_write:
        write_section("slow-clients", text)


@contextlib.contextmanager
def _work_folder(keep: bool) -> Iterator[str]:
    """A temporary folder for the servers' data and logs, removed at the end unless `keep`."""
    folder = tempfile.mkdtemp(prefix="tus-slow-")
    try:
        yield folder
    finally:
        if keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
