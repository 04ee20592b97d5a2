"""tusserver benchmark: throughput, CPU, memory and small-request rate, side by side.

    .venv/bin/python bench/run.py            # the full benchmark (make bench)
    .venv/bin/python bench/run.py --quick    # 256 MiB only, one run, short small-request runs

Starts every server it needs on free ports of 127.0.0.1 (tusserver with fsync off and on; the
minimal file-writing WSGI app reading the socket directly like tusserver, the ceiling, with and
without fsync; the same app reading gunicorn's `wsgi.input`; the Node reference @tus/server as a
cluster of as many processes as tusserver has workers), measures them in the same session,
alternating the servers within every run, and writes bench/RESULTS.md. Every ratio is the
median of run-by-run ratios between two servers doing the same work. See bench/README.md for
what every number means.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import client, servers  # noqa: E402
from bench.client import GiB, MiB  # noqa: E402
from tests.support.procstats import PeakRss  # noqa: E402

PATCH_SIZE = 5 * MiB
RANGE_SIZE = 8 * MiB
CONCURRENCY = (1, 4)
SMALL_CONNECTIONS = 16

TARGETS = {
    "upload_vs_socket": 0.90,
    "upload_vs_node_patches": 1.2,
    "upload_vs_node_one": 1.0,
    "upload_fsync_vs_socket_fsync": 0.90,
    "download_vs_node": 1.2,
    "s3_upload": 0.85,
    "s3_download": 0.90,
    "rss_growth_per_worker": 64 * MiB,
    "small_rps": 2000,
}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- sampling ------------------------------------------------------------------------------


@dataclass
class Sample:
    mibps: float
    cpu_per_gib: float
    peak_rss: int


@dataclass
class Series:
    """Samples of one scenario on one server, in run order."""

    samples: list[Sample] = field(default_factory=list)

    def values(self, attribute: str = "mibps") -> list[float]:
        return [getattr(sample, attribute) for sample in self.samples]

    def median(self, attribute: str = "mibps") -> float:
        return statistics.median(self.values(attribute)) if self.samples else float("nan")


def ratio_median(ours: Series, other: Series) -> float:
    """Median of the run-by-run ratios ours / other."""
    pairs = [a.mibps / b.mibps for a, b in zip(ours.samples, other.samples, strict=False)]
    return statistics.median(pairs) if pairs else float("nan")


def fmt(series: Series, attribute: str = "mibps", digits: int = 0) -> str:
    values = series.values(attribute)
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def fmt_ratio(value: float) -> str:
    return "-" if value != value else f"{value:.2f}x"


# -- measurements --------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, pool: client.ClientPool, base: Path):
        self.args = args
        self.pool = pool
        self.base = base
        self.uploads: dict[tuple[int, int | None, int], dict[str, Series]] = {}
        self.downloads: dict[tuple[int, str, int], dict[str, Series]] = {}
        self.small: dict[str, dict[str, dict[str, float]]] = {}
        self.kept: dict[str, dict[int, str]] = {}  # server -> size -> upload path (downloads)
        self.notes: list[str] = []
        self.client_ceiling: dict[str, float] = {}

    def upload_once(
        self, server: servers.Server, size: int, patch: int | None, concurrency: int
    ) -> tuple[Sample, list[dict[str, Any]]]:
        job = (
            "upload",
            {"host": "127.0.0.1", "port": server.port, "size": size, "patch_size": patch},
        )
        results, seconds, cpu, peak_rss = self.timed(server, [job] * concurrency)
        total = size * concurrency
        expected = client.expected_sha256(size)
        paths = [str(server.stored_file(result["id"])) for result in results]
        with ThreadPoolExecutor(2) as hashers:  # hashlib lets go of the GIL: both cores hash
            digests = list(hashers.map(client.file_sha256, paths))
        for result, actual in zip(results, digests, strict=True):
            if actual != expected:
                raise RuntimeError(f"{server.name}: upload {result['id']} has the wrong sha256")
        sample = Sample(total / MiB / seconds, cpu / (total / GiB), peak_rss)
        return sample, results

    def download_once(
        self, server: servers.Server, size: int, mode: str, concurrency: int
    ) -> Sample:
        path = self.kept[server.name][size]
        job = (
            "download",
            {
                "host": "127.0.0.1",
                "port": server.port,
                "path": path,
                "size": size,
                "range_size": RANGE_SIZE if mode == "range" else None,
            },
        )
        results, seconds, cpu, peak_rss = self.timed(server, [job] * concurrency)
        total = sum(r["bytes"] for r in results)
        return Sample(total / MiB / seconds, cpu / (total / GiB), peak_rss)

    def timed(
        self, server: servers.Server, jobs: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], float, float, int]:
        """Run client jobs at once against `server` from a quiet machine; returns their results,
        the wall time from the first request to the last answer, the server's CPU seconds and
        its peak RSS meanwhile."""
        self.quiesce()
        cpu_before = server.cpu()
        with PeakRss(server.pid) as rss:
            results = self.pool.run(jobs)
        cpu = server.cpu() - cpu_before
        seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
        return results, seconds, cpu, rss.peak

    def quiesce(self, timeout: float = 5.0) -> None:
        """Start every timed transfer from a quiet machine, as far as the benchmark can tell:
        the disk has written what the previous server left (so nobody's fsyncs wait behind
        somebody else's writeback) and no server is still busy with its last turn (Node's
        garbage collector, say), for at most `timeout` seconds."""
        os.sync()
        servers_now = getattr(self, "servers", [])
        deadline = time.monotonic() + timeout
        while servers_now and time.monotonic() < deadline:
            before = sum(server.cpu() for server in servers_now)
            time.sleep(0.2)
            if sum(server.cpu() for server in servers_now) - before < 0.02:
                return

    # -- phases ----------------------------------------------------------------------------

    def measure_client_ceiling(self) -> None:
        """The client alone against a null sink (stores nothing, sends zeros)."""
        port = servers.free_port()
        sink = client.start_null_sink(port)
        size = max(self.args.sizes)
        try:
            for label, kind, extra in (
                ("upload, one PATCH", "upload", {"patch_size": None}),
                ("upload, 5 MiB PATCHes", "upload", {"patch_size": PATCH_SIZE}),
                ("download, full GET", "download", {"range_size": None}),
                ("download, 8 MiB ranges", "download", {"range_size": RANGE_SIZE}),
            ):
                for concurrency in CONCURRENCY:
                    kwargs: dict[str, Any] = {"host": "127.0.0.1", "port": port, "size": size}
                    if kind == "download":
                        kwargs["path"] = f"/files/null-{size}"
                    results = self.pool.run([(kind, {**kwargs, **extra})] * concurrency)
                    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
                    mibps = size * concurrency / MiB / seconds
                    self.client_ceiling[f"{label}, {concurrency} at once"] = mibps
                    say(f"client ceiling: {label}, {concurrency} at once: {mibps:.0f} MiB/s")
        finally:
            client.stop_process(sink)

    def warm_up(self, group: list[servers.Server]) -> None:
        """Small uploads so every worker has imported everything (then idle RSS), and one
        unrecorded round of the first scenario on every server.

        The round matters on this kind of machine: memory the kernel has not handed out for a
        while is slow to fill the first time (a VM's free pages go back to the host), so the
        first server measured would otherwise pay for everybody.
        """
        for server in group:
            say(f"warming up {server.name}")
            for patch in (None, PATCH_SIZE):
                _, results = self.upload_once(server, 32 * MiB, patch, 4)
                for result in results:
                    server.remove_upload(result["id"])
            time.sleep(0.5)
            server.idle_rss = servers.tree_rss(server.pid)
        for server in group:
            _, results = self.upload_once(server, min(self.args.sizes), None, max(CONCURRENCY))
            for result in results:
                server.remove_upload(result["id"])

    def run_uploads(self, group: list[servers.Server]) -> None:
        for size in self.args.sizes:
            for patch in (None, PATCH_SIZE):
                for concurrency in CONCURRENCY:
                    key = (size, patch, concurrency)
                    table = self.uploads.setdefault(key, {})
                    for run in range(self.args.runs):
                        for server in _turns(group, run):
                            sample, results = self.upload_once(server, size, patch, concurrency)
                            table.setdefault(server.name, Series()).samples.append(sample)
                            for result in results:
                                server.remove_upload(result["id"])
                            say(
                                f"upload {size // MiB} MiB {_patch_label(patch)} "
                                f"x{concurrency} run {run + 1} {server.name}: "
                                f"{sample.mibps:.0f} MiB/s, {sample.cpu_per_gib:.2f} CPU s/GiB, "
                                f"RSS +{(sample.peak_rss - server.idle_rss) / MiB:.0f} MiB"
                            )

    def prepare_downloads(self, group: list[servers.Server]) -> None:
        """One upload of each size per server, kept for the downloads; GET verified once."""
        for server in group:
            for size in self.args.sizes:
                _, results = self.upload_once(server, size, PATCH_SIZE, 1)
                path = results[0]["path"]
                self.kept.setdefault(server.name, {})[size] = path
                check = self.pool.run(
                    [
                        (
                            "download",
                            {
                                "host": "127.0.0.1",
                                "port": server.port,
                                "path": path,
                                "size": size,
                                "verify": True,
                            },
                        )
                    ]
                )[0]
                if check["sha256"] != client.expected_sha256(size):
                    raise RuntimeError(f"{server.name}: GET sent the wrong bytes")

    def run_downloads(self, group: list[servers.Server]) -> None:
        for size in self.args.sizes:
            for mode in ("full", "range"):
                for concurrency in CONCURRENCY:
                    key = (size, mode, concurrency)
                    table = self.downloads.setdefault(key, {})
                    for run in range(self.args.runs):
                        for server in _turns(group, run):
                            if mode == "range" and server.kind != "ours":
                                continue  # @tus/server and the baseline ignore Range
                            sample = self.download_once(server, size, mode, concurrency)
                            table.setdefault(server.name, Series()).samples.append(sample)
                            say(
                                f"download {size // MiB} MiB {mode} x{concurrency} "
                                f"run {run + 1} {server.name}: {sample.mibps:.0f} MiB/s, "
                                f"{sample.cpu_per_gib:.2f} CPU s/GiB"
                            )

    def run_small(self, group: list[servers.Server]) -> None:
        wrk = find_wrk(self.args.install)
        if wrk is None:
            self.notes.append(
                "wrk not available: small requests measured with the Python load generator "
                "(4 processes x 4 connections), which needs more CPU per request than wrk"
            )
        for server in group:
            path = self.kept[server.name][min(self.args.sizes)]
            for method, target, headers in (
                ("HEAD", path, {"Tus-Resumable": "1.0.0"}),
                ("OPTIONS", "/files/" if server.kind != "node" else "/files", {}),
            ):
                result = None
                self.quiesce()
                if wrk:
                    run_wrk(wrk, server.port, method, target, headers, 1)  # warm-up, not kept
                    result = run_wrk(
                        wrk, server.port, method, target, headers, self.args.small_seconds
                    )
                    if result["rps"] < 1:  # wrk waits for a body after some HEAD answers
                        self.notes.append(
                            f"wrk completed no {method} request on {server.name}: measured "
                            "with the Python load generator instead"
                        )
                        result = None
                if result is None:
                    result = self.run_python_load(server.port, method, target, headers)
                self.small.setdefault(server.name, {})[method] = result
                say(
                    f"{method} {server.name}: {result['rps']:.0f} req/s, p99 "
                    f"{result['p99_ms']:.1f} ms, errors {result['errors']:.0f}"
                )

    def run_python_load(
        self, port: int, method: str, path: str, headers: dict[str, str]
    ) -> dict[str, float]:
        per = SMALL_CONNECTIONS // self.pool.size
        job = (
            "small",
            {
                "host": "127.0.0.1",
                "port": port,
                "method": method,
                "path": path,
                "headers": headers,
                "seconds": self.args.small_seconds,
                "connections": per,
            },
        )
        results = self.pool.run([job] * self.pool.size)
        latencies = sorted(x for r in results for x in r["latencies"])
        seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
        return {
            "rps": len(latencies) / seconds,  # 2xx answers only: errors are not throughput
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
            "errors": float(sum(r["errors"] for r in results)),
        }


def _turns(group: list[servers.Server], run: int) -> list[servers.Server]:
    """The servers in the order they take their turn: A B C, then C B A (ABBA), so a trend over
    time (a neighbour's load, the disk catching up) favours nobody."""
    return list(group) if run % 2 == 0 else list(reversed(group))


def _patch_label(patch: int | None) -> str:
    return "one PATCH" if patch is None else f"{patch // MiB} MiB PATCHes"


# -- wrk -----------------------------------------------------------------------------------


def find_wrk(install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say("wrk not found and apt-get not usable: using the Python load generator")
        return None
    say("wrk not found: apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
            env=env,
            capture_output=True,
            timeout=300,
        )
    return shutil.which("wrk")


def run_wrk(
    wrk: str, port: int, method: str, path: str, headers: dict[str, str], seconds: float
) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    try:
        output = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{SMALL_CONNECTIONS}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        script.unlink()
    return parse_wrk(output)


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s of 2xx answers only: wrk's own Requests/sec counts every answer, so a server
    answering errors quickly would look fast. Non-2xx answers and socket errors are errors."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    requests, seconds = int(done.group(1)), float(done.group(2)) * unit
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    failed = int(non2xx.group(1)) if non2xx else 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    broken = sum(int(x) for x in socket_errors.groups()) if socket_errors else 0
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": (requests - failed) / seconds,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "errors": float(failed + broken),
    }


# -- S3 ------------------------------------------------------------------------------------


def run_s3(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    try:
        from bench import s3_compare  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"bench/s3_compare.py not available ({exc}): S3 comparison skipped"
    measure: Callable[..., dict[str, Any]] | None = getattr(s3_compare, "measure_s3", None)
    if measure is None:
        return None, "bench/s3_compare.py has no measure_s3(): S3 comparison skipped"
    try:
        result = measure(size=args.s3_size, runs=args.runs, log=say)
    except Exception as exc:  # a missing moto or minio must not sink the local numbers
        return None, f"S3 comparison failed: {type(exc).__name__}: {exc}"
    table = s3_compare.format_table(result) if hasattr(s3_compare, "format_table") else ""
    return result, table


# -- report --------------------------------------------------------------------------------


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    from importlib.metadata import version

    return [
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {model}, {os.cpu_count()} cores; RAM {memory / GiB:.1f} GiB",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, gunicorn {version('gunicorn')}, "
        f"Flask {version('flask')}, Werkzeug {version('werkzeug')}",
    ]


def build_report(
    bench: Bench,
    args: argparse.Namespace,
    config: list[str],
    names: dict[str, str],
    s3: tuple[dict[str, Any] | None, str],
    started: float,
) -> str:
    out: list[str] = ["# tusserver benchmark results", ""]
    out += ["Written by `bench/run.py` (`make bench`); see bench/README.md.", ""]
    out += ["## Machine and configuration", "", *machine(), *config]
    out.append(f"- Wall time of this benchmark: {(time.monotonic() - started) / 60:.1f} min")
    out.append("")
    verdicts: list[tuple[str, str, bool | None]] = []

    out += ["## Client ceiling (null sink)", ""]
    out += [
        "The load generator alone against a server that stores nothing "
        f"({max(args.sizes) // MiB} MiB per transfer):",
        "",
    ]
    out += ["| transfer | MiB/s |", "|---|---|"]
    out += [f"| {label} | {value:.0f} |" for label, value in bench.client_ceiling.items()]
    out.append("")

    ours, socket_app, wsgi = names["ours"], names["socket"], names["wsgi"]
    node = names.get("node")
    ours_f, socket_f = names.get("ours_fsync"), names.get("socket_fsync")
    server_of = {s.name: s for s in bench.servers}
    out += ["## Uploads (local store)", ""]
    out += [
        "MiB/s, median (min-max) over runs; every ratio is the median of the run-by-run ratios "
        "of two servers storing the same bytes. Servers take turns in every run, in reverse "
        "order every other run. *socket app*: the file-writing WSGI app reading the socket "
        "with tusserver's own reader (the ceiling: the same reads and writes, nothing else); "
        "*wsgi.input app*: the same app reading gunicorn's `wsgi.input`"
        + (
            f"; @tus/server runs as a Node cluster of {server_of[node].workers} processes, as "
            f"many as ours has workers"
            if node
            else ""
        )
        + ".",
        "",
    ]
    header = "| file | PATCHes | at once | ours | socket app | ours/socket | wsgi.input app |"
    header += " ours/wsgi.input |"
    rule = "|---|---|---|---|---|---|---|---|"
    if node:
        header += " @tus/server | ours/@tus |"
        rule += "---|---|"
    if ours_f and socket_f:
        header += " ours fsync | socket app fsync | ours/socket fsync |"
        rule += "---|---|---|"
    out += [header, rule]
    worst: dict[str, tuple[float, str]] = {}

    def track(name: str, value: float, where: str) -> None:
        if value == value and (name not in worst or value < worst[name][0]):
            worst[name] = (value, where)

    for (size, patch, concurrency), table in bench.uploads.items():
        where = f"{_size(size)}, {_patch_label(patch)}, {concurrency} at once"
        r_socket = ratio_median(table[ours], table[socket_app])
        track("upload_vs_socket", r_socket, where)
        r_wsgi = ratio_median(table[ours], table[wsgi])
        row = (
            f"| {_size(size)} | {_patch_label(patch)} | {concurrency} | {fmt(table[ours])} "
            f"| {fmt(table[socket_app])} | {fmt_ratio(r_socket)} "
            f"| {fmt(table[wsgi])} | {fmt_ratio(r_wsgi)} |"
        )
        if node:
            r_node = ratio_median(table[ours], table[node])
            track(
                "upload_vs_node_one" if patch is None else "upload_vs_node_patches", r_node, where
            )
            row += f" {fmt(table[node])} | {fmt_ratio(r_node)} |"
        if ours_f and socket_f:
            r_f = ratio_median(table[ours_f], table[socket_f])
            track("upload_fsync_vs_socket_fsync", r_f, where)
            row += f" {fmt(table[ours_f])} | {fmt(table[socket_f])} | {fmt_ratio(r_f)} |"
        out.append(row)
    out.append("")

    out += ["### Server CPU seconds per GiB uploaded (median)", ""]
    columns = [n for n in (ours, socket_app, wsgi, node, ours_f, socket_f) if n]
    out += [
        "| file | PATCHes | at once | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (size, patch, concurrency), table in bench.uploads.items():
        cells = " | ".join(f"{table[n].median('cpu_per_gib'):.2f}" for n in columns)
        out.append(f"| {_size(size)} | {_patch_label(patch)} | {concurrency} | {cells} |")
    out.append("")

    out += ["### Peak RSS growth over idle, per worker (4 uploads at once, worst run)", ""]
    out += [
        "Whole process tree from /proc (gunicorn master and workers; the Node cluster's "
        "processes for @tus/server), sampled every 50 ms, minus the tree's RSS when idle "
        "after warm-up, "
        "divided by the number of workers.",
        "",
    ]
    out += ["| file | PATCHes | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for (size, patch, concurrency), table in bench.uploads.items():
        if concurrency != max(CONCURRENCY):
            continue
        cells = []
        for name in columns:
            server = server_of[name]
            growth = max(table[name].values("peak_rss")) - server.idle_rss
            cells.append(f"{growth / server.workers / MiB:.1f} MiB")
            if name in (ours, ours_f):
                track("rss", -growth / server.workers, f"{_size(size)}, {_patch_label(patch)}")
        out.append(f"| {_size(size)} | {_patch_label(patch)} | {' | '.join(cells)} |")
    idle = ", ".join(f"{s.name} {s.idle_rss / MiB:.0f} MiB" for s in bench.servers)
    out += ["", f"Idle RSS after warm-up: {idle}.", ""]

    out += ["## Downloads (local store)", ""]
    out += [
        "Full GET and consecutive 8 MiB Range GETs of a stored upload. @tus/server and the "
        "socket app ignore Range, so ranges are measured on ours only. The socket app sends "
        "files as the wsgi.input app does (sendfile), so it stands for both.",
        "",
    ]
    dl_cols = [n for n in (ours, socket_app, node) if n]
    header = "| file | request | at once | " + " | ".join(dl_cols) + " |"
    if node:
        header += " ours/@tus |"
    out += [header, "|---|---|---|" + "---|" * (len(dl_cols) + (1 if node else 0))]
    for (size, mode, concurrency), table in bench.downloads.items():
        cells = [fmt(table.get(n, Series())) for n in dl_cols]
        row = (
            f"| {_size(size)} | {'full GET' if mode == 'full' else '8 MiB ranges'} "
            f"| {concurrency} | {' | '.join(cells)} |"
        )
        if node:
            r_node = ratio_median(table[ours], table[node]) if node in table else float("nan")
            if node in table:
                track("download_vs_node", r_node, f"{_size(size)} full GET, {concurrency} at once")
            row += f" {fmt_ratio(r_node)} |"
        out.append(row)
    out += [
        "",
        "CPU seconds per GiB sent (median): "
        + "; ".join(
            f"{n} {statistics.median([t[n].median('cpu_per_gib') for t in bench.downloads.values() if n in t]):.2f}"  # noqa: E501
            for n in dl_cols
        )
        + ".",
        "",
    ]

    out += ["## Small requests", ""]
    out += [
        f"{SMALL_CONNECTIONS} concurrent keep-alive connections for {args.small_seconds:.0f} s "
        "each; HEAD is the tus HEAD of an upload (Tus-Resumable set), OPTIONS the tus "
        "discovery request.",
        "",
    ]
    out += [
        "Requests/s count 2xx answers only; any other answer, and any socket error, is counted "
        "in the errors column instead.",
        "",
        "| server | HEAD req/s | HEAD p99 | HEAD errors | OPTIONS req/s | OPTIONS p99 "
        "| OPTIONS errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, methods in bench.small.items():
        head, options = methods.get("HEAD", {}), methods.get("OPTIONS", {})
        out.append(
            f"| {name} | {head.get('rps', 0):.0f} | {head.get('p99_ms', 0):.1f} ms "
            f"| {head.get('errors', 0):.0f} | {options.get('rps', 0):.0f} "
            f"| {options.get('p99_ms', 0):.1f} ms | {options.get('errors', 0):.0f} |"
        )
        if name == ours:
            track("small_rps", min(head.get("rps", 0), options.get("rps", 0)), "HEAD/OPTIONS")
    out.append("")

    out += ["## S3 store", ""]
    s3_result, s3_text = s3
    if s3_result is None:
        out += [s3_text, ""]
    else:
        out += [s3_text, ""]
        from bench import s3_compare

        up, down = s3_result["upload"], s3_result["download"]
        for contender in ("tus_one_patch", "tus_patches"):
            label = s3_compare.label(contender, s3_result)
            track("s3_upload", s3_compare.ratio(up[contender], up[s3_compare.REFERENCE]), label)
            track(
                "s3_download", s3_compare.ratio(down[contender], down[s3_compare.REFERENCE]), label
            )

    out += ["## Targets", ""]
    out += ["| target | goal | measured (worst scenario) | met |", "|---|---|---|---|"]
    rows = [
        ("Upload vs the socket app (the ceiling), fsync off", "upload_vs_socket", ">= 0.90x"),
        ("Upload vs @tus/server, 5 MiB PATCHes", "upload_vs_node_patches", ">= 1.2x"),
        ("Upload vs @tus/server, one PATCH", "upload_vs_node_one", ">= 1.0x"),
        (
            "Upload with fsync vs the socket app with fsync",
            "upload_fsync_vs_socket_fsync",
            ">= 0.90x",
        ),
        ("Download vs @tus/server (full GET)", "download_vs_node", ">= 1.2x"),
        ("S3 upload vs direct minio, one PUT per part", "s3_upload", ">= 0.85x"),
        ("S3 download vs direct minio, one GET per part", "s3_download", ">= 0.90x"),
    ]
    for label, key, goal in rows:
        if key not in worst:
            out.append(f"| {label} | {goal} | not measured | - |")
            continue
        value, where = worst[key]
        met = value >= TARGETS[key]
        shown = _ratio_against(value, TARGETS[key])
        verdicts.append((label, shown, met))
        out.append(f"| {label} | {goal} | {shown} ({where}) | {'yes' if met else 'NO'} |")
    if "rss" in worst:
        value, where = worst["rss"]
        met = -value < TARGETS["rss_growth_per_worker"]
        out.append(
            f"| Peak RSS growth per worker, 4 uploads at once | < 64 MiB "
            f"| {-value / MiB:.1f} MiB ({where}) | {'yes' if met else 'NO'} |"
        )
    if "small_rps" in worst:
        value, _ = worst["small_rps"]
        met = value >= TARGETS["small_rps"]
        out.append(
            f"| HEAD and OPTIONS, {SMALL_CONNECTIONS} clients | >= 2000 req/s "
            f"| {value:.0f} req/s (the slower of the two) | {'yes' if met else 'NO'} |"
        )
    out.append("")
    if bench.notes:
        out += ["## Notes", "", *[f"- {note}" for note in bench.notes], ""]
    return "\n".join(out)


def _ratio_against(value: float, target: float) -> str:
    """A ratio with two decimals, or three where two would round it across the target."""
    if (round(value, 2) >= target) != (value >= target):
        return f"{value:.3f}x"
    return f"{value:.2f}x"


def _size(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB and size % GiB == 0 else f"{size // MiB} MiB"


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="256 MiB files only, one run, short small-request runs"
    )
    parser.add_argument("--runs", type=int, help="runs per scenario (default 4, quick 1)")
    parser.add_argument("--sizes", help="file sizes in MiB, comma-separated (default 256,1024)")
    parser.add_argument("--small-seconds", type=float, help="seconds per small-request run")
    parser.add_argument("--s3-size", type=int, help="S3 comparison file size in MiB")
    parser.add_argument("--no-node", action="store_true", help="skip @tus/server")
    parser.add_argument("--no-fsync", action="store_true", help="skip the fsync comparison")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 comparison")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="never apt-get install wrk (use the Python load generator)",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--tmp", help="folder for servers' data (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    parser.add_argument(
        "--worker-class",
        choices=("gevent", "gthread"),
        help="tusserver's gunicorn worker (default: what it ships with, gevent)",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 4)  # even: the ABBA turns balance out
    sizes = args.sizes or ("256" if args.quick else "256,1024")
    args.sizes = [int(x) * MiB for x in sizes.split(",")]
    args.small_seconds = args.small_seconds or (3.0 if args.quick else 5.0)
    args.s3_size = (args.s3_size or (64 if args.quick else 256)) * MiB
    args.install = not args.no_install
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    load_at_start = os.getloadavg()  # taken now: the report is built at the end
    pool = client.ClientPool(max(CONCURRENCY)).start()  # forked before any thread starts
    base = Path(tempfile.mkdtemp(prefix="tusserver-bench-", dir=args.tmp))
    workers, threads = servers.serve_defaults()
    from tusserver.embedded_redis import EmbeddedRedis
    from tusserver.settings import Settings

    redis = EmbeddedRedis(base / "redis").start()
    bench = Bench(args, pool, base)
    bench.servers = []  # type: ignore[attr-defined]
    names = {"ours": "ours", "socket": "socket", "wsgi": "wsgi-input"}
    config = [
        f"- Servers: {workers} gunicorn workers each; ours with the "
        f"{args.worker_class or servers.default_worker_class()} worker"
        f"{' (its default)' if not args.worker_class else ''}, the baseline apps with gthread, "
        f"{threads} threads (tusserver serve's defaults); tusserver with "
        f"TUSSERVER_READ_CHUNK_SIZE={Settings().read_chunk_size // 1024} KiB, a private "
        "embedded Redis with its append-only file (fsync every second), whose CPU time is "
        "counted in ours",
        f"- Files: {', '.join(_size(s) for s in args.sizes)}; {args.runs} run(s) per scenario, "
        "servers alternating within each run; PATCHes of one whole file or 5 MiB each",
        f"- Data folder: a temporary folder on {_filesystem(base)}",
        f"- Load average at the start: {' '.join(f'{x:.2f}' for x in load_at_start)}",
    ]
    try:
        say("measuring the client alone against a null sink")
        bench.measure_client_ceiling()
        say("starting servers")
        group = [
            servers.start_ours(
                "ours", base, redis, False, workers, threads, worker_class=args.worker_class
            ),
            servers.start_baseline("socket", base, "socket", False, workers, threads),
            servers.start_baseline("wsgi-input", base, "wsgi-input", False, workers, threads),
        ]
        if not args.no_node:
            folder, message = servers.install_node(base)
            if folder is None:
                bench.notes.append(message)
                say(message)
            else:
                group.append(servers.start_node("node", base, folder, workers))
                names["node"] = "node"
                config.append(
                    f"- Node reference: {message}, FileStore (no fsync), a `cluster` of "
                    f"{workers} processes (as many as ours has workers)"
                )
        if not args.no_fsync:
            group.append(
                servers.start_ours(
                    "ours-fsync",
                    base,
                    redis,
                    True,
                    workers,
                    threads,
                    worker_class=args.worker_class,
                )
            )
            group.append(
                servers.start_baseline("socket-fsync", base, "socket", True, workers, threads)
            )
            names.update({"ours_fsync": "ours-fsync", "socket_fsync": "socket-fsync"})
        bench.servers = group  # type: ignore[attr-defined]
        bench.warm_up(group)
        bench.run_uploads(group)
        plain = [s for s in group if s.name in ("ours", "socket", "node")]
        bench.prepare_downloads(plain)
        bench.run_downloads(plain)
        bench.run_small(plain)
        for server in group:
            server.stop()
            if server.kind == "node":
                crashes = server.log_tail(100000).count("uncaughtException")
                if crashes:
                    bench.notes.append(
                        f"@tus/server raised {crashes} uncaught exception(s) inside Node's web "
                        "streams ('ReadableStream is already closed'); the bench script logs them "
                        "instead of letting the process die"
                    )
        s3: tuple[dict[str, Any] | None, str] = (None, "S3 comparison skipped (--no-s3)")
        if not args.no_s3:
            say("S3 comparison (bench/s3_compare.py)")
            s3 = run_s3(args)
            if s3[0] is None:
                say(s3[1])
        report = build_report(bench, args, config, names, s3, started)
    finally:
        for server in getattr(bench, "servers", []):
            server.stop()
        redis.stop()
        pool.close()
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(report)
    output = Path(args.output)
    kept = other_benchmarks(output.read_text()) if output.exists() else ""
    output.write_text(report + "\n" + kept)
    say(f"written to {args.output}")
    return 0


def other_benchmarks(text: str) -> str:
    """The sections other benchmark scripts wrote into the same file (their titles name their
    script, "## ... (`bench/...`)"), kept after this report instead of being overwritten."""
    sections = re.split(r"(?m)^(?=## )", text)
    return "".join(part for part in sections if re.match(r"## .*\(`bench/", part))


def _filesystem(path: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        output = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        if len(output) >= 2:
            fields = output[1].split()
            return f"{fields[1]}"  # the type only: paths and devices say nothing portable
    return "unknown filesystem"


if __name__ == "__main__":
    sys.exit(main())
