"""Upload MiB/s through nginx against direct, on the same tusserver, in one run.

    .venv/bin/python bench/nginx_compare.py            # 256 MiB, 4 runs, ABBA order
    .venv/bin/python bench/nginx_compare.py --runs 2 --size-mib 64

nginx is Debian's binary, configured from compose/nginx/tusserver.conf.template exactly as the
tests do it (tests/support/nginx.py); the server is `tusserver serve` (gevent workers, fsync
off, TUSSERVER_BEHIND_PROXY=true). Each upload (one PATCH, or 5 MiB PATCHes, 1 and 4 at once)
is checked by sha256 of the stored file. The report goes to stdout and to its own section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import client, servers  # noqa: E402
from bench.results_file import write_section  # noqa: E402
from tests.support.nginx import nginx_binary, running_nginx  # noqa: E402

MiB = 1024 * 1024


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    binary = nginx_binary()
    if binary is None:
        sys.exit("nginx is not installed (Debian package nginx)")
    size = args.size_mib * MiB
    pool = client.ClientPool(4).start()
    rows: dict[tuple[str, int], dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="tus-nginx-") as folder:
            base = Path(folder)
            data = base / "ours"
            data.mkdir()
            port = servers.free_port()
            env = servers._clean_env()
            env.update(
                {
                    "TUSSERVER_DATA_DIR": str(data),
                    "TUSSERVER_FSYNC": "false",
                    "TUSSERVER_BEHIND_PROXY": "true",
                    "TUSSERVER_AUTH": "none",
                    "TUSSERVER_LOG_LEVEL": "WARNING",
                }
            )
            command = [sys.executable, "-m", "tusserver", "serve", "--port", str(port)]
            process = servers._popen(command, env, base / "ours.log", ROOT)
            server = servers.Server(
                "ours", port, process, data / "uploads", base / "ours.log", 2, "ours"
            )
            servers._wait_ready(server, "GET", "/api/health", 200)
            try:
                with running_nginx(binary, port, base / "nginx") as nginx:
                    targets = {"direct": port, "through nginx": nginx.port}
                    for patch in (None, 5 * MiB):
                        for concurrency in (1, 4):
                            for run in range(args.runs):
                                order = list(targets.items())
                                if run % 2:
                                    order.reverse()
                                for name, target in order:
                                    mibps = upload(pool, server, target, size, patch, concurrency)
                                    key = (
                                        "one PATCH" if patch is None else "5 MiB PATCHes",
                                        concurrency,
                                    )
                                    rows.setdefault(key, {}).setdefault(name, []).append(mibps)
                                    say(f"{key[0]} x{concurrency} {name}: {mibps:.0f} MiB/s")
                    if nginx.buffered_files():
                        say("nginx wrote request bodies to disk!")
            finally:
                server.stop()
    finally:
        pool.close()
    text = report(rows, args)
    print(text)
    if not args.no_write:
        write_section("nginx", text)


def upload(
    pool: client.ClientPool,
    server: servers.Server,
    port: int,
    size: int,
    patch: int | None,
    concurrency: int,
) -> float:
    job = ("upload", {"host": "127.0.0.1", "port": port, "size": size, "patch_size": patch})
    time.sleep(0.5)
    results = pool.run([job] * concurrency)
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    expected = client.expected_sha256(size)
    for result in results:
        path = server.stored_file(result["id"])
        if client.file_sha256(str(path)) != expected:
            raise RuntimeError(f"upload {result['id']} has the wrong sha256")
        server.remove_upload(result["id"])
    return size * concurrency / MiB / seconds


def report(rows: dict[tuple[str, int], dict[str, list[float]]], args: argparse.Namespace) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Uploads through nginx (`bench/nginx_compare.py`)",
        "",
        f"Run of {now}: {args.size_mib} MiB uploads to one tusserver (gevent, fsync off), "
        f"direct and through nginx (compose/nginx/tusserver.conf.template), taking turns, "
        f"{args.runs} runs; median (min-max) MiB/s and the median of the run-by-run ratios.",
        "",
        "| upload | direct | through nginx | nginx / direct |",
        "|---|---|---|---|",
    ]
    for (label, concurrency), by_name in rows.items():
        direct, proxied = by_name["direct"], by_name["through nginx"]
        ratio = statistics.median(p / d for p, d in zip(proxied, direct, strict=True))
        lines.append(
            f"| {label}, {concurrency} at once | {fmt(direct)} | {fmt(proxied)} | {ratio:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


if __name__ == "__main__":
    main()
