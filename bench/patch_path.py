"""The PATCH hot path, before and after: Redis round trips, CPU per PATCH, 5 MiB-PATCH MiB/s.

Compares two source trees in the same run: the working tree ("new") and a git revision
("old", default: the merge base with main, i.e. the code without this branch). Both talk to
one private Valkey started here with the AOF policy the embedded server ships with
(`appendfsync always`).

- round trips and CPU: in-process (Flask test client, local store), N PATCHes of 4 KiB on one
  upload; a round trip is one request written to the Redis socket (a pipeline counts once);
  CPU is the process's user+system time over those PATCHes.
- throughput: `tusserver serve` (gunicorn, 2 workers) per tree, started once and warmed up,
  256 MiB uploads in 5 MiB PATCHes (bench/client.py), old and new taking turns, with fsync on
  and then off; MiB/s and the server tree's CPU seconds per GiB; the ratio is the median of the
  run-by-run ratios.

    .venv/bin/python bench/patch_path.py [--old REV] [--runs 9] [--fsync on,off] [--size-mib 256]

`make bench` runs it with `--old aa5e30c` (the Makefile's BENCH_OLD).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

N_PATCHES = 300
SMALL = 4096


def measure_in_process(redis_url: str) -> dict[str, float]:
    """Run in a subprocess whose `tusserver` is the tree under test."""
    import redis
    import redis.connection

    from tusserver import create_app
    from tusserver.settings import Settings

    sends = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sends[0] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        options = {"auth": "none"} if "auth" in Settings.__dataclass_fields__ else {}
        settings = Settings(
            data_dir=Path(tmp), redis_url=redis_url, redis_prefix=f"bench{os.getpid()}:", **options
        )
        app = create_app(settings)
        client = app.test_client()
        tus = {"Tus-Resumable": "1.0.0"}
        created = client.post(
            "/files/", headers={**tus, "Upload-Length": str(SMALL * (N_PATCHES + 20))}
        )
        path = "/files/" + created.headers["Location"].rsplit("/", 1)[-1]
        body = os.urandom(SMALL)
        offset = 0

        def one() -> None:
            nonlocal offset
            response = client.patch(
                path,
                data=body,
                headers={
                    **tus,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                },
            )
            assert response.status_code == 204, response.status_code
            offset += SMALL

        for _ in range(20):  # warm-up: scripts loaded, connections open
            one()
        sends[0] = 0
        cpu = time.process_time()
        wall = time.perf_counter()
        for _ in range(N_PATCHES):
            one()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        app.extensions["tusserver"].keeper.stop()
    return {
        "round_trips": sends[0] / N_PATCHES,
        "cpu_us": cpu / N_PATCHES * 1e6,
        "wall_us": wall / N_PATCHES * 1e6,
    }


def in_tree(tree: Path, redis_url: str) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
        "from bench.patch_path import measure_in_process;"
        "print(json.dumps(measure_in_process(sys.argv[3])))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(ROOT), redis_url],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def serve(
    tree: Path,
    data_dir: Path,
    redis_url: str,
    port: int,
    worker_class: str | None = None,
    fsync: bool = True,
) -> subprocess.Popen[bytes]:
    """`tusserver serve` from `tree`; `worker_class` only for trees that know the setting."""
    import requests

    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
    env.update(
        TUSSERVER_DATA_DIR=str(data_dir),
        TUSSERVER_REDIS_URL=redis_url,
        TUSSERVER_REDIS_PREFIX=f"benchsrv{port}:",
        TUSSERVER_LOG_LEVEL="WARNING",
        TUSSERVER_FSYNC="true" if fsync else "false",
        PYTHONPATH=str(tree),
    )
    if "auth:" in (tree / "tusserver" / "settings.py").read_text():
        env["TUSSERVER_AUTH"] = "none"
    if worker_class and "worker_class:" in (tree / "tusserver" / "settings.py").read_text():
        env["TUSSERVER_WORKER_CLASS"] = worker_class
    process = subprocess.Popen(
        [sys.executable, "-m", "tusserver", "serve", "--port", str(port), "--workers", "2"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server from {tree} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=None, help="git revision of the 'old' tree")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument(
        "--fsync",
        default="on,off",
        help="data fsync modes to measure, each old vs new: on, off or on,off (default)",
    )
    parser.add_argument(
        "--worker-class",
        default=None,
        help="the new tree's worker class (default: what it ships with; the old tree has gthread)",
    )
    parser.add_argument(
        "--aof-cost",
        action="store_true",
        help="only measure what Valkey's appendfsync policy costs per PATCH (working tree)",
    )
    parser.add_argument("--no-in-process", action="store_true", help="skip round trips and CPU")
    args = parser.parse_args()
    if args.aof_cost:
        aof_cost()
        return
    sys.path.insert(0, str(ROOT))  # only here: the measuring subprocesses import their own tree
    from tusserver.embedded_redis import EmbeddedRedis

    began = time.monotonic()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}", flush=True)
    old_rev = (
        args.old
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{old_rev}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
    )
    if known.returncode != 0:
        sys.exit(f"revision {old_rev!r} is not in this clone (shallow?): nothing to compare")
    modes = [mode.strip() for mode in args.fsync.split(",") if mode.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", old_rev], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        with EmbeddedRedis(Path(tmp) / "redis", persistent=True) as server:
            trees = {"old": old_tree, "new": ROOT}
            print(f"old = {old_rev[:10]}, new = working tree", flush=True)
            if not args.no_in_process:
                for name, tree in trees.items():
                    result = in_tree(tree, server.url)
                    print(
                        f"{name}: {result['round_trips']:.2f} Redis round trips and "
                        f"{result['cpu_us']:.0f} µs CPU per 4 KiB PATCH",
                        flush=True,
                    )
            for mode in modes:
                throughput(trees, Path(tmp) / f"fsync-{mode}", server.url, mode == "on", args)
    print(
        f"load average at the end: {os.getloadavg()[0]:.2f}; "
        f"took {(time.monotonic() - began) / 60:.1f} min",
        flush=True,
    )


def throughput(
    trees: dict[str, Path], folder: Path, redis_url: str, fsync: bool, args: argparse.Namespace
) -> None:
    """Old and new `tusserver serve`, each started once and warmed up, taking turns (ABBA).

    Every upload is 256 MiB in 5 MiB PATCHes on one connection; besides MiB/s the server's
    whole process tree's CPU seconds per GiB are recorded (steadier on a shared machine).
    """
    from bench.client import upload
    from tests.support.procstats import stop_process, tree_cpu
    from tusserver.embedded_redis import free_port

    size = args.size_mib * 1024 * 1024
    label = "fsync on" if fsync else "fsync off"
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, tree in trees.items():
            port = free_port()
            process = serve(tree, folder / name, redis_url, port, args.worker_class, fsync)
            servers[name] = (process, port)
            upload("127.0.0.1", port, 64 * 1024 * 1024, 5 * 1024 * 1024)  # warm-up
        speeds: dict[str, list[float]] = {"old": [], "new": []}
        cpus: dict[str, list[float]] = {"old": [], "new": []}
        for run in range(args.runs):
            order = ["old", "new"] if run % 2 == 0 else ["new", "old"]
            for name in order:
                process, port = servers[name]
                subprocess.run(["sync"], check=False)
                cpu = tree_cpu(process.pid)
                done = upload("127.0.0.1", port, size, 5 * 1024 * 1024)
                cpus[name].append((tree_cpu(process.pid) - cpu) / (size / 2**30))
                speeds[name].append(size / 2**20 / (done["ended"] - done["started"]))
                _remove_uploads(folder / name)
            print(
                f"{label}, run {run + 1}: old {speeds['old'][-1]:.0f} MiB/s "
                f"({cpus['old'][-1]:.2f} CPU s/GiB), new {speeds['new'][-1]:.0f} MiB/s "
                f"({cpus['new'][-1]:.2f} CPU s/GiB), load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        for process, _ in servers.values():
            stop_process(process)
    ratios = [n / o for n, o in zip(speeds["new"], speeds["old"], strict=True)]
    cpu_ratios = [o / n for n, o in zip(cpus["new"], cpus["old"], strict=True) if n > 0]
    print(
        f"{label}, 5 MiB PATCHes, {args.size_mib} MiB x {args.runs}: "
        f"old {statistics.median(speeds['old']):.0f} MiB/s, "
        f"new {statistics.median(speeds['new']):.0f} MiB/s, "
        f"ratio (median of runs) {statistics.median(ratios):.2f}; server CPU s/GiB "
        f"old {statistics.median(cpus['old']):.2f}, new {statistics.median(cpus['new']):.2f} "
        f"(old/new {statistics.median(cpu_ratios):.2f})",
        flush=True,
    )


def _remove_uploads(data_dir: Path) -> None:
    """Delete the uploaded files (the servers never read them again).

    The machine is a VM whose untouched memory is slow to fill the first time: page cache
    for a new 256 MiB file every upload costs several times the CPU of reusing freed pages, and
    how much depends on what else ran lately. Freeing each upload's pages keeps runs alike, and
    keeps the dirty pages from piling up: a few hundred MiB of them and the kernel throttles
    every writer to the disk's speed, which then is all a run measures. (Until 2026-12-01 this
    looked in the wrong folder and deleted nothing: after the first run or two, every run
    measured the disk.)
    """
    removed = 0
    for entry in (data_dir / "uploads").iterdir():
        if entry.is_file() and len(entry.name) == 32:
            entry.unlink()
            removed += 1
    if not removed:
        raise RuntimeError(f"no upload file found to remove under {data_dir}")


def aof_cost(rounds: int = 3) -> None:
    """Wall time per 4 KiB PATCH with `appendfsync everysec` and `always`, alternating."""
    sys.path.insert(0, str(ROOT))
    from tusserver.embedded_redis import EmbeddedRedis

    walls: dict[str, list[float]] = {"everysec": [], "always": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            for policy in walls:
                directory = Path(tmp) / f"{policy}-{round_}"
                with EmbeddedRedis(directory, persistent=True, fsync=policy) as server:
                    walls[policy].append(in_tree(ROOT, server.url)["wall_us"])
    for policy, values in walls.items():
        print(
            f"appendfsync {policy}: {statistics.median(values):.0f} µs per 4 KiB PATCH", flush=True
        )


if __name__ == "__main__":
    main()
