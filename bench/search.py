"""Search latency: filtered, sorted pages of 100,000 uploads across 100 users, in a real Valkey.

    .venv/bin/python bench/search.py [--uploads 100000] [--users 100] [--repeat 300]
                                     [--url redis://127.0.0.1:6399/0]

`--url` runs against a Valkey you started (on this machine: its CPU time is read from /proc) and
loads the uploads only when it does not hold them yet, so a loaded server is reused while tuning.

Loads the uploads once (state hashes plus the catalog's indexes, pipelined), then times
`RedisState.list` -- the catalog's query script and the page's state reads, what
`GET /api/uploads` costs in Redis -- for several filter combinations, as a user (one owner's
scope, a random owner each time) and as an admin (the fleet-wide scope). Prints p50/p99/max
in milliseconds per combination and writes the table to bench/RESULTS.md ("search" section).
Target: p99 under 20 ms for a 50-item page. On a busy machine the wall-clock columns mostly
measure waiting for a core; Valkey's CPU time per listing (from /proc) is the steady number.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_section  # noqa: E402
from tests.support.procstats import tree_cpu  # noqa: E402
from tusserver.embedded_redis import EmbeddedRedis  # noqa: E402
from tusserver.models import UploadInfo, new_upload_id  # noqa: E402
from tusserver.state.catalog import CatalogQuery  # noqa: E402
from tusserver.state.connect import connect  # noqa: E402
from tusserver.state.redis import RedisState, _encode  # noqa: E402

TAGS = [f"tag-{n}" for n in range(40)] + ["invoice", "photo", "draft", "2026", "shared"]
TYPES = ["image/png", "image/jpeg", "image/webp", "text/plain", "text/csv", "application/pdf",
         "application/json", "video/mp4", "audio/mpeg", "application/zip"]  # fmt: skip
WORDS = ["report", "photo", "invoice", "notes", "backup", "scan", "holiday", "draft", "budget",
         "meeting", "contract", "summary", "export", "archive", "screenshot", "letter"]  # fmt: skip
BASE = 1_760_000_000.0
SPAN = 365 * 86400.0

COMBOS: list[tuple[str, CatalogQuery]] = [
    ("no filter, newest first", CatalogQuery()),
    ("sort=name", CatalogQuery(sort="name", descending=False)),
    ("sort=-size", CatalogQuery(sort="size")),
    ("tag=photo", CatalogQuery(tags=("photo",))),
    ("tag=photo&tag=2026", CatalogQuery(tags=("photo", "2026"))),
    ("type=image/", CatalogQuery(type="image")),
    ("type=image/png&sort=name", CatalogQuery(type="image/png", sort="name", descending=False)),
    ("complete=false", CatalogQuery(complete=False)),
    ("complete=true&sort=updated", CatalogQuery(complete=True, sort="updated")),
    ("min_size=1MB&max_size=10MB", CatalogQuery(min_size=1_000_000, max_size=10_000_000)),
    ("since=(last 30 days)", CatalogQuery(since=BASE + SPAN - 30 * 86400)),
    ("q=report", CatalogQuery(q="report")),
    ("q=ep (common)", CatalogQuery(q="ep")),
    ("q=zz (no match)", CatalogQuery(q="zz")),
    ("q=e&complete=true (one dense character)", CatalogQuery(q="e", complete=True)),
    ("q=report&tag=photo", CatalogQuery(q="report", tags=("photo",))),
    ("q=scan&type=image/&complete=true", CatalogQuery(q="scan", type="image", complete=True)),
    ("tag=invoice&type=application/pdf&since", CatalogQuery(
        tags=("invoice",), type="application/pdf", since=BASE + SPAN / 2)),
    ("type=image/&complete=true&sort=name", CatalogQuery(
        type="image", complete=True, sort="name", descending=False)),
    ("complete=true&min_size=1MB&sort=name", CatalogQuery(
        complete=True, min_size=1_000_000, sort="name", descending=False)),
    ("complete=false&max_size=1MB&sort=-size", CatalogQuery(
        complete=False, max_size=1_000_000, sort="size")),
    ("type=image/&min_size=1MB (a large set and a large range)", CatalogQuery(
        type="image", min_size=1_000_000)),
    ("type=image/&complete=true&min_size=1MB", CatalogQuery(
        type="image", complete=True, min_size=1_000_000)),
]  # fmt: skip


def random_upload(rng: random.Random, owner: str) -> UploadInfo:
    name = "-".join(rng.sample(WORDS, rng.randint(1, 3))) + f"-{rng.randint(1, 9999)}"
    kind = rng.choice(TYPES)
    name += "." + kind.split("/")[1]
    length = rng.choice([None, rng.randint(0, 50_000_000), rng.randint(0, 2_000_000)])
    complete = length is not None and rng.random() < 0.7
    offset = length if complete and length is not None else 0
    created = BASE + rng.random() * SPAN
    metadata = {"filename": name, "filetype": kind}
    tags = rng.sample(TAGS, rng.choice([0, 1, 2, 3, 4]))
    if tags:
        metadata["tags"] = ",".join(tags)
    return UploadInfo(
        id=new_upload_id(),
        length=length,
        offset=offset,
        metadata=metadata,
        created=created,
        updated=created + rng.random() * 86400,
        completed=created if complete else None,
        owner=owner,
    )


def load(state: RedisState, uploads: int, users: int) -> list[str]:
    rng = random.Random(15)
    owners = [f"user{n:03d}" for n in range(users)]
    batch: list[UploadInfo] = []
    for n in range(uploads):
        batch.append(random_upload(rng, owners[n % users]))
        if len(batch) == 2000 or n == uploads - 1:
            pipe = state.client.pipeline(transaction=False)
            for info in batch:
                pipe.hset(state.keys.upload(info.id), mapping=_encode(info))
            pipe.execute()
            state.catalog.index_new(batch)
            batch = []
    return owners


def script_usec(state: RedisState) -> float:
    """Microseconds Valkey spent in scripts so far (its own clock: no client-side noise)."""
    stats = state.client.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0))


def measure(
    state: RedisState, query: CatalogQuery, owners: list[str] | None, repeat: int, pid: int
) -> tuple[list[float], float, float]:
    """Wall-clock milliseconds of each listing; Valkey's mean script time and CPU time per
    listing (its CPU time does not grow with other work waiting for the machine's cores)."""
    rng = random.Random(1)
    times = []
    before, cpu_before = script_usec(state), tree_cpu(pid)
    for _ in range(repeat):
        owner = rng.choice(owners) if owners else None
        start = time.perf_counter()
        state.list(50, 0, owner, query)
        times.append((time.perf_counter() - start) * 1000)
    script_ms = (script_usec(state) - before) / repeat / 1000
    return times, script_ms, (tree_cpu(pid) - cpu_before) / repeat * 1000


def row(name: str, who: str, total: int, times: list[float], script: float, cpu: float) -> str:
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return (
        f"| {name} | {who} | {total} | {statistics.median(times):.2f} | {p99:.2f} "
        f"| {times[-1]:.2f} | {script:.2f} | {cpu:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--only", default="", help="only the filters whose name contains this")
    parser.add_argument("--url", default="", help="a running local Valkey to use (and reuse)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if not args.url:
            server = EmbeddedRedis(Path(tmp), persistent=False, unix_socket=False).start()
        try:
            client = connect(args.url or server.url)  # type: ignore[union-attr]
            pid = int(client.info("server")["process_id"])
            state = RedisState(client, "bench:")
            started = time.perf_counter()
            if client.zcard(f"{state.keys.all_uploads}:uploads") == args.uploads:
                owners = [f"user{n:03d}" for n in range(args.users)]
            else:
                client.flushdb()
                owners = load(state, args.uploads, args.users)
            loaded = time.perf_counter() - started
            memory = client.info("memory")["used_memory"] / 2**20
            load_avg = Path("/proc/loadavg").read_text().split()[0]
            lines = [
                f"{args.uploads} uploads across {args.users} users (loaded in {loaded:.0f} s; "
                f"Valkey used_memory {memory:.0f} MiB), a 50-item page through "
                f"`RedisState.list` (query script + the page's state reads), over TCP, "
                f"{args.repeat} requests per row; milliseconds. Load average at the start: "
                f"{load_avg} on {os.cpu_count()} cores.",
                "",
                "| filter | scope | matches | p50 | p99 | max | Valkey script mean | Valkey CPU |",
                "|---|---|---|---|---|---|---|---|",
            ]
            print("\n".join(lines), flush=True)
            for name, query in COMBOS:
                if args.only not in name:
                    continue
                for who, scope in (("user", owners), ("admin", None)):
                    total = state.list(1, 0, owners[0] if scope else None, query).total
                    times, script, cpu = measure(state, query, scope, args.repeat, pid)
                    line = row(name, who, total, times, script, cpu)
                    print(line, flush=True)
                    lines.append(line)
            client.close()
        finally:
            if server is not None:
                server.stop()
    text = "## Search (bench/search.py)\n\n" + "\n".join(lines) + "\n"
    if not args.no_write:
        write_section("search", text)


if __name__ == "__main__":
    main()
