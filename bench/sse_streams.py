"""How many concurrent event streams (`GET /api/events`) one server holds, and what they cost.

    .venv/bin/python bench/sse_streams.py                      # 1,000, 2,500, 5,000 streams
    .venv/bin/python bench/sse_streams.py --levels 500,1000    # quicker
    .venv/bin/python bench/sse_streams.py --no-write           # leave bench/RESULTS.md alone

Starts `tusserver serve` (the gevent worker, 2 workers, the shipped settings except a stream
cap high enough for the largest level) on a private Valkey, then, level by level, opens event
streams until the level is reached (plain sockets in one selector loop, spread over
127.0.0.2-127.0.0.9 as source addresses) and measures:

- the RSS of the server's process tree (gunicorn master and workers; Valkey is not in it);
- how many of the open streams got the `created` event of an upload made on the server right
  after the level was reached (every stream, not a sample), and how long the last one took;
- how many pub/sub subscriptions the server holds on Valkey (one per worker process, whatever
  the number of streams).

The report goes to stdout and to its own section of bench/RESULTS.md (`write_section`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from bench.results_file import write_section  # noqa: E402
from bench.slow_clients import start_ours  # noqa: E402
from tests.support.procstats import tree_rss  # noqa: E402
from tusserver.embedded_redis import EmbeddedRedis  # noqa: E402
from tusserver.worker_limits import raise_open_file_limit  # noqa: E402

MiB = 1024 * 1024
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
TAIL = 8192
"""Bytes of each stream kept for matching (a stream's data is otherwise thrown away)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Streams:
    """Many open event streams, read together in one selector loop."""

    def __init__(self, port: int):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.tails: dict[socket.socket, bytearray] = {}
        self.opened: set[socket.socket] = set()
        self.refused = 0

    def __len__(self) -> int:
        return len(self.tails)

    def open(self, count: int) -> None:
        request = (
            f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        for n in range(count):
            sock = socket.socket()
            sock.bind((SOURCES[(len(self.tails) + n) % len(SOURCES)], 0))
            sock.connect(("127.0.0.1", self.port))
            sock.sendall(request)
            sock.setblocking(False)
            self.tails[sock] = bytearray()
            self.selector.register(sock, selectors.EVENT_READ)
            if n % 200 == 199:
                self.pump(lambda: False, 0.05)  # keep up with what arrives

    def pump(self, done: object, timeout: float) -> bool:
        """Read whatever arrives until `done()` or `timeout` seconds; True if done."""
        deadline = time.monotonic() + timeout
        while not done():  # type: ignore[operator]
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in self.selector.select(timeout=min(left, 0.2)):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(sock)
                    self.tails.pop(sock, None)  # type: ignore[call-overload]
                    self.opened.discard(sock)  # type: ignore[arg-type]
                    continue
                tail = self.tails[sock]  # type: ignore[index]
                tail += data
                del tail[:-TAIL]
                if sock not in self.opened:
                    if b"stream open" in tail:
                        self.opened.add(sock)  # type: ignore[arg-type]
                    elif b" 503 " in tail:
                        self.refused += 1
        return True

    def count_with(self, marker: bytes) -> int:
        return sum(1 for tail in self.tails.values() if marker in tail)

    def close(self) -> None:
        for sock in list(self.tails):
            with contextlib.suppress(OSError):
                sock.close()
        self.selector.close()


def measure(levels: list[int]) -> tuple[list[dict[str, float]], str]:
    raise_open_file_limit()
    with tempfile.TemporaryDirectory(prefix="sse-bench-") as tmp:
        base = Path(tmp)
        valkey = EmbeddedRedis(base / "valkey", persistent=False, unix_socket=False).start()
        env = {
            "TUSSERVER_REDIS_URL": valkey.url,
            "TUSSERVER_EVENTS_MAX_STREAMS": str(max(levels)),
            "TUSSERVER_LOG_LEVEL": "WARNING",
        }
        server = start_ours("sse", base, "gevent", 2, 8, env)
        client = redis.Redis.from_url(valkey.url)
        streams = Streams(server.port)
        rows: list[dict[str, float]] = []
        try:
            idle_rss = tree_rss(server.pid)
            say(f"idle server tree: {idle_rss / MiB:.0f} MiB")
            for level in levels:
                streams.open(level - len(streams))
                streams.pump(lambda level=level: len(streams.opened) >= level, 120)
                rss = tree_rss(server.pid)
                made = time.monotonic()
                response = requests.post(
                    f"http://127.0.0.1:{server.port}/files/",
                    headers={"Tus-Resumable": "1.0.0", "Upload-Length": "1"},
                    timeout=30,
                )
                upload_id = response.headers["Location"].rsplit("/", 1)[-1].encode()
                open_now = len(streams.opened)
                streams.pump(lambda u=upload_id, n=open_now: streams.count_with(u) >= n, 60)
                delivered = streams.count_with(upload_id)
                took = time.monotonic() - made
                channel = "tusserver:events"
                subscriptions = client.pubsub_numsub(channel)[0][1]
                row = {
                    "streams": open_now,
                    "rss_mib": rss / MiB,
                    "per_stream_kib": (rss - idle_rss) / max(1, open_now) / 1024,
                    "delivered": delivered,
                    "seconds": took,
                    "subscriptions": subscriptions,
                    "refused": streams.refused,
                }
                rows.append(row)
                say(
                    f"{open_now} streams: RSS {row['rss_mib']:.0f} MiB, event on {delivered} of "
                    f"{open_now} in {took:.2f} s, {subscriptions} subscription(s)"
                )
        finally:
            streams.close()
            server.stop()
            valkey.stop()
    return rows, f"{idle_rss / MiB:.0f}"


def report(rows: list[dict[str, float]], idle: str) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Concurrent event streams (bench/sse_streams.py)",
        "",
        f"{when}, {platform.machine()}, {len_cpus()} CPU(s). `tusserver serve` with the gevent "
        "worker (2 workers) on a private Valkey; streams opened from one client process; after "
        "each level one upload is created and every open stream is checked for its `created` "
        f"event. Idle server tree (master + 2 workers): {idle} MiB.",
        "",
        "| open streams | server RSS (MiB) | per stream (KiB) | event delivered to "
        "| last one after | Valkey subscriptions |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['streams']:.0f} | {row['rss_mib']:.0f} | {row['per_stream_kib']:.1f} "
            f"| {row['delivered']:.0f} of {row['streams']:.0f} | {row['seconds']:.2f} s "
            f"| {row['subscriptions']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines) + "\n"


def len_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1000,2500,5000")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    levels = sorted(int(n) for n in args.levels.split(","))
    rows, idle = measure(levels)
    text = report(rows, idle)
    print(text)
    if not args.no_write:
        write_section("sse_streams", text)


if __name__ == "__main__":
    main()
