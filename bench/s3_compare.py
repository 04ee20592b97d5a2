"""What the tus layer costs on top of S3: tusserver's S3 store versus a direct minio client.

    .venv/bin/python bench/s3_compare.py [--size-mib 256] [--runs 3] [--json]

Starts a moto S3 server (its own process, on a free port of 127.0.0.1) and `tusserver serve`
with TUSSERVER_STORAGE=s3 against it (embedded Redis), then measures MiB/s of:

- tusserver: one PATCH of the whole file, then a GET of it;
- tusserver: the same file in PATCHes of `patch_size` (8 MiB), then a GET;
- minio direct, the server's own object layout: one plain `put_object` per part-size slice and a
  `get_object` of each in order. This is the S3 work tusserver itself does for an upload and a
  download, so it is the reference every ratio is taken against: equal work on both sides.
  (A minio multipart upload is not compared: S3 must assemble it afterwards, which is other
  work than tusserver's part objects.)

The contenders take turns in every run, in reverse order every other run (ABBA), so drift hits
all of them alike. The same random bytes (made once) are sent every time; every transfer is
checked by size while timed, and after every upload the stored bytes are read back, untimed,
and checked by SHA-256. Prints a Markdown table (median, min-max) with the median of the
run-by-run ratios to the reference, and the server's peak RSS during the uploads.
`measure_s3(...)` returns the same numbers as a dict for other scripts (bench/run.py).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minio import Minio  # noqa: E402

from tests.support.procstats import PeakRss, stop_process, tree_rss  # noqa: E402
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_process, server_env  # noqa: E402
from tusserver.embedded_redis import free_port  # noqa: E402

MiB = 1024 * 1024
BLOCK = MiB
BUCKET = "tus-bench"
DIRECT_BUCKET = "tus-bench-direct"

REFERENCE = "direct_parts"
CONTENDERS = ("tus_one_patch", "tus_patches", REFERENCE)
LABELS = {
    "tus_one_patch": "tusserver, one PATCH",
    "tus_patches": "tusserver, {patch} MiB PATCHes",
    "direct_parts": "minio direct, one object per {part} MiB part",
}


def label(contender: str, result: dict[str, Any]) -> str:
    """The table label of a contender in a `measure_s3` result."""
    return LABELS[contender].format(
        patch=result["patch_size"] // MiB, part=result["part_size"] // MiB
    )


def ratio(samples: list[float], reference: list[float]) -> float:
    """The median of the run-by-run ratios (run i of `samples` over run i of `reference`)."""
    return statistics.median(a / b for a, b in zip(samples, reference, strict=True))


# -- processes -----------------------------------------------------------------------------


@dataclass
class TusServer:
    url: str
    pid: int


@contextlib.contextmanager
def tusserver(
    endpoint: str, part_size: int, workers: int = 2, threads: int = 8
) -> Iterator[TusServer]:
    """`tusserver serve` with the S3 store on `endpoint` and its embedded Redis in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="tus-s3-bench-") as data_dir:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
        env.update(server_env(endpoint, BUCKET, part_size))
        env.update(
            {
                "TUSSERVER_DATA_DIR": data_dir,
                "TUSSERVER_LOG_LEVEL": "WARNING",
                "TUSSERVER_AUTH": "none",  # the protocol's cost, not an account check's
            }
        )
        command = [sys.executable, "-m", "tusserver", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(workers), "--threads", str(threads)]
        log_path = Path(data_dir) / "server.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            server = TusServer(f"http://127.0.0.1:{port}", process.pid)
            _wait_healthy(server, process, log_path)
            yield server
        finally:
            stop_process(process)


def _wait_healthy(server: TusServer, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tusserver exited:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError):
            status, _, _ = _request("GET", f"{server.url}/api/health")
            if status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"tusserver did not become healthy:\n{log.read_text(errors='replace')}")


# -- one transfer each ---------------------------------------------------------------------


def _request(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        connection.request(method, parts.path or "/", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def tus_create(server: TusServer, size: int) -> str:
    """POST a new upload of `size` bytes; returns its URL."""
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
    status, response_headers, body = _request("POST", f"{server.url}/files/", headers)
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:200]!r}")
    return server.url + urlsplit(response_headers["Location"]).path


def tus_upload(url: str, data: bytes, patch_size: int | None = None) -> float:
    """PATCH `data` to a fresh upload (one PATCH, or PATCHes of `patch_size`); seconds taken."""
    view = memoryview(data)
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    step = patch_size or len(data)
    started = time.perf_counter()
    try:
        offset = 0
        while offset < len(data):
            piece = view[offset : offset + step]
            connection.putrequest("PATCH", parts.path)
            connection.putheader("Tus-Resumable", "1.0.0")
            connection.putheader("Content-Type", "application/offset+octet-stream")
            connection.putheader("Upload-Offset", str(offset))
            connection.putheader("Content-Length", str(len(piece)))
            connection.endheaders()
            for start in range(0, len(piece), BLOCK):
                connection.send(piece[start : start + BLOCK])
            response = connection.getresponse()
            body = response.read()
            if response.status != 204:
                raise RuntimeError(f"PATCH at {offset}: {response.status} {body[:200]!r}")
            offset = int(response.getheader("Upload-Offset") or 0)
    finally:
        connection.close()
    return time.perf_counter() - started


def tus_download(url: str, size: int, digest: Callable[[bytes], None] | None = None) -> float:
    """GET the upload, streamed in 1 MiB reads; seconds taken (checks the size)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    started = time.perf_counter()
    received = 0
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"GET: {response.status} {response.read()[:200]!r}")
        while block := response.read(BLOCK):
            received += len(block)
            if digest:
                digest(block)
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"GET returned {received} of {size} bytes")
    return seconds


def tus_delete(url: str) -> None:
    status, _, body = _request("DELETE", url, {"Tus-Resumable": "1.0.0"})
    if status != 204:
        raise RuntimeError(f"DELETE: {status} {body[:200]!r}")


def direct_client(endpoint: str) -> Minio:
    client = Minio(
        endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, region=REGION
    )
    if not client.bucket_exists(DIRECT_BUCKET):
        client.make_bucket(DIRECT_BUCKET)
    return client


def direct_parts_upload(client: Minio, key: str, data: bytes, part_size: int) -> float:
    """One plain `put_object` per `part_size` slice (tusserver's layout); seconds taken."""
    view = memoryview(data)
    started = time.perf_counter()
    for start in range(0, len(data), part_size):
        piece = view[start : start + part_size]
        client.put_object(
            DIRECT_BUCKET,
            f"{key}/{start:020d}",
            io.BytesIO(piece),
            len(piece),
            part_size=max(len(piece), 5 * MiB),
        )
    return time.perf_counter() - started


def direct_parts_download(
    client: Minio,
    key: str,
    size: int,
    part_size: int,
    digest: Callable[[bytes], None] | None = None,
) -> float:
    """`get_object` of each part object in order, streamed; seconds taken (checks the size)."""
    started = time.perf_counter()
    received = 0
    for start in range(0, size, part_size):
        response = client.get_object(DIRECT_BUCKET, f"{key}/{start:020d}")
        try:
            for block in response.stream(BLOCK):
                received += len(block)
                if digest:
                    digest(block)
        finally:
            response.close()
            response.release_conn()
    seconds = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"part objects returned {received} of {size} bytes")
    return seconds


def direct_parts_remove(client: Minio, key: str, size: int, part_size: int) -> None:
    for start in range(0, size, part_size):
        client.remove_object(DIRECT_BUCKET, f"{key}/{start:020d}")


# -- the comparison ------------------------------------------------------------------------


def measure_s3(
    size: int = 256 * MiB,
    runs: int = 4,
    part_size: int = 8 * MiB,
    patch_size: int = 8 * MiB,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison; returns MiB/s samples and RSS figures.

    Result: {"size", "runs", "part_size", "patch_size",
             "upload": {contender: [MiB/s per run]}, "download": {contender: [MiB/s per run]},
             "rss_idle": bytes, "rss_peak_upload": bytes (max over all tusserver uploads),
             "verified": number of uploads whose stored bytes matched by SHA-256}
    with contenders "tus_one_patch", "tus_patches" and the reference "direct_parts".
    """
    say = log or (lambda _message: None)
    data = os.urandom(size)  # real random bytes, made once, sent by every contender
    expected = hashlib.sha256(data).hexdigest()
    mib = size / MiB
    upload: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    download: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    verified = 0
    with moto_process() as endpoint, tusserver(endpoint, part_size) as server:
        client = direct_client(endpoint)
        _request("GET", f"{server.url}/api/health")
        rss_idle = tree_rss(server.pid)
        rss_peak = rss_idle
        for run in range(1, runs + 1):
            order = CONTENDERS if run % 2 else tuple(reversed(CONTENDERS))
            for name in order:
                stored = hashlib.sha256()
                if name == REFERENCE:
                    key = f"parts-{run}"
                    up = direct_parts_upload(client, key, data, part_size)
                    down = direct_parts_download(client, key, size, part_size)
                    direct_parts_download(client, key, size, part_size, stored.update)
                    direct_parts_remove(client, key, size, part_size)
                else:
                    url = tus_create(server, size)
                    with PeakRss(server.pid) as peak:
                        up = tus_upload(url, data, patch_size if name == "tus_patches" else None)
                    rss_peak = max(rss_peak, peak.peak)
                    down = tus_download(url, size)
                    tus_download(url, size, stored.update)
                    tus_delete(url)
                if stored.hexdigest() != expected:  # checked untimed, after every upload
                    raise RuntimeError(f"run {run} {name}: stored bytes differ from those sent")
                verified += 1
                upload[name].append(mib / up)
                download[name].append(mib / down)
                say(f"run {run} {name}: up {mib / up:.0f} MiB/s, down {mib / down:.0f} MiB/s")
    return {
        "size": size,
        "runs": runs,
        "part_size": part_size,
        "patch_size": patch_size,
        "upload": upload,
        "download": download,
        "rss_idle": rss_idle,
        "rss_peak_upload": rss_peak,
        "verified": verified,
    }


def _summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} ({min(samples):.0f}-{max(samples):.0f})"


def format_table(result: dict[str, Any]) -> str:
    """The Markdown table for a `measure_s3` result."""
    size_mib = result["size"] // MiB
    up, down = result["upload"], result["download"]
    lines = [
        f"tusserver's S3 store vs a direct minio client doing the same S3 work (one object per "
        f"{result['part_size'] // MiB} MiB part, PUT then GET in order): {size_mib} MiB, "
        f"{result['runs']} runs, contenders in reverse order every other run, moto S3 on "
        f"127.0.0.1. Ratios are medians of run-by-run ratios; every one of the "
        f"{result['verified']} uploads was read back and checked by SHA-256.",
        "",
        "| path | upload MiB/s, median (min-max) | vs direct parts | download MiB/s, median "
        "(min-max) | vs direct parts |",
        "|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        lines.append(
            f"| {label(name, result)} | {_summary(up[name])} "
            f"| {ratio(up[name], up[REFERENCE]):.2f}x | {_summary(down[name])} "
            f"| {ratio(down[name], down[REFERENCE]):.2f}x |"
        )
    lines += [
        "",
        f"tusserver RSS (process tree: gunicorn master, workers, embedded Redis): idle "
        f"{result['rss_idle'] / MiB:.0f} MiB, peak during uploads "
        f"{result['rss_peak_upload'] / MiB:.0f} MiB "
        f"(+{(result['rss_peak_upload'] - result['rss_idle']) / MiB:.0f} MiB)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--patch-size-mib", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    args = parser.parse_args(argv)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    result = measure_s3(
        args.size_mib * MiB,
        args.runs,
        args.part_size_mib * MiB,
        args.patch_size_mib * MiB,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(format_table(result))
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
