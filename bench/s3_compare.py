"""What the tus layer costs on top of S3: tusserver's S3 store versus a direct minio client.

    .venv/bin/python bench/s3_compare.py [--size-mib 256] [--runs 3] [--json]

Starts a moto S3 server (its own process, on a free port of 127.0.0.1) and `tusserver serve`
with TUSSERVER_STORAGE=s3 against it (embedded Redis), then, alternating the contenders in every
run so that drift hits all of them alike, measures MiB/s of:

- tusserver: one PATCH of the whole file, then a GET of it;
- tusserver: the same file in PATCHes of `patch_size` (8 MiB), then a GET;
- minio direct: `put_object` of the same bytes with the same part size (one part at a time, as
  the server puts its parts; a multipart upload, as a client would do it) and `get_object`;
- minio direct, the server's own object layout: one plain `put_object` per part-size slice and a
  `get_object` of each in order. This is the S3 work tusserver itself does, so it is the upper
  bound for tusserver through the same endpoint.

Every transfer is checked by size while timed; one download of each kind is checked by SHA-256
after the timed runs. Prints a Markdown table (median, min-max) with the ratios to the direct
client and the server's peak RSS during the uploads. `measure_s3(...)` returns the same numbers
as a dict for other scripts (bench/run.py).
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
import signal
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

from tests.support.procstats import PeakRss, tree_rss  # noqa: E402
from tusserver.embedded_redis import free_port  # noqa: E402

MiB = 1024 * 1024
BLOCK = MiB
ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"
BUCKET = "tus-bench"
DIRECT_BUCKET = "tus-bench-direct"

MOTO_SCRIPT = """
import logging, time
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
while True:
    time.sleep(3600)
"""

CONTENDERS = ("tus_one_patch", "tus_patches", "direct", "direct_parts")
LABELS = {
    "tus_one_patch": "tusserver, one PATCH",
    "tus_patches": "tusserver, {patch} MiB PATCHes",
    "direct": "minio direct, put_object/get_object",
    "direct_parts": "minio direct, one object per {part} MiB part",
}


# -- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in its own process; yields its endpoint "127.0.0.1:port"."""
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"moto server did not start (exit {process.poll()})")
        yield f"127.0.0.1:{int(line)}"
    finally:
        _stop(process)


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
        env.update(
            {
                "TUSSERVER_DATA_DIR": data_dir,
                "TUSSERVER_STORAGE": "s3",
                "TUSSERVER_S3_ENDPOINT": endpoint,
                "TUSSERVER_S3_SECURE": "false",
                "TUSSERVER_S3_ACCESS_KEY": ACCESS_KEY,
                "TUSSERVER_S3_SECRET_KEY": SECRET_KEY,
                "TUSSERVER_S3_REGION": REGION,
                "TUSSERVER_S3_BUCKET": BUCKET,
                "TUSSERVER_S3_PART_SIZE": str(part_size),
                "TUSSERVER_LOG_LEVEL": "WARNING",
                "TUSSERVER_AUTH": "none",
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
            _stop(process)


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


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


def direct_upload(client: Minio, key: str, data: bytes, part_size: int) -> float:
    """`put_object` of `data` with `part_size` parts, one part at a time; seconds taken."""
    started = time.perf_counter()
    client.put_object(
        DIRECT_BUCKET, key, io.BytesIO(data), len(data), part_size=part_size, num_parallel_uploads=1
    )
    return time.perf_counter() - started


def direct_download(
    client: Minio, key: str, size: int, digest: Callable[[bytes], None] | None = None
) -> float:
    """`get_object`, streamed in 1 MiB reads; seconds taken (checks the size)."""
    started = time.perf_counter()
    received = 0
    response = client.get_object(DIRECT_BUCKET, key)
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
        raise RuntimeError(f"get_object returned {received} of {size} bytes")
    return seconds


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


def direct_parts_download(client: Minio, key: str, size: int, part_size: int) -> float:
    """`get_object` of each part object in order, streamed; seconds taken (checks the size)."""
    started = time.perf_counter()
    received = 0
    for start in range(0, size, part_size):
        response = client.get_object(DIRECT_BUCKET, f"{key}/{start:020d}")
        try:
            for block in response.stream(BLOCK):
                received += len(block)
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


def make_data(size: int) -> bytes:
    """`size` incompressible-looking bytes (a SHA-512 chain per MiB, cheap to make)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        counter += 1
        seed = hashlib.sha512(counter.to_bytes(8, "big")).digest()
        out += (seed * (MiB // len(seed)))[: size - len(out)]
    return bytes(out)


def measure_s3(
    size: int = 256 * MiB,
    runs: int = 3,
    part_size: int = 8 * MiB,
    patch_size: int = 8 * MiB,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the comparison; returns MiB/s samples and RSS figures.

    Result: {"size", "runs", "part_size", "patch_size",
             "upload": {contender: [MiB/s, ...]}, "download": {contender: [MiB/s, ...]},
             "rss_idle": bytes, "rss_peak_upload": bytes (max over all tusserver uploads),
             "verified": True}
    with contenders "tus_one_patch", "tus_patches", "direct", "direct_parts".
    """
    say = log or (lambda _message: None)
    data = make_data(size)
    expected = hashlib.sha256(data).hexdigest()
    mib = size / MiB
    upload: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    download: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with moto_server() as endpoint, tusserver(endpoint, part_size) as server:
        client = direct_client(endpoint)
        _request("GET", f"{server.url}/api/health")
        rss_idle = tree_rss(server.pid)
        rss_peak = rss_idle
        for run in range(1, runs + 1):
            for name in CONTENDERS:
                if name == "direct":
                    key = f"run-{run}"
                    up = direct_upload(client, key, data, part_size)
                    down = direct_download(client, key, size)
                    client.remove_object(DIRECT_BUCKET, key)
                elif name == "direct_parts":
                    key = f"parts-{run}"
                    up = direct_parts_upload(client, key, data, part_size)
                    down = direct_parts_download(client, key, size, part_size)
                    direct_parts_remove(client, key, size, part_size)
                else:
                    url = tus_create(server, size)
                    with PeakRss(server.pid) as peak:
                        up = tus_upload(url, data, patch_size if name == "tus_patches" else None)
                    rss_peak = max(rss_peak, peak.peak)
                    down = tus_download(url, size)
                    tus_delete(url)
                upload[name].append(mib / up)
                download[name].append(mib / down)
                say(f"run {run} {name}: up {mib / up:.0f} MiB/s, down {mib / down:.0f} MiB/s")

        # Correctness, outside the timed runs: one full SHA-256 check per path.
        url = tus_create(server, size)
        tus_upload(url, data, patch_size)
        tus_hash = hashlib.sha256()
        tus_download(url, size, tus_hash.update)
        tus_delete(url)
        direct_upload(client, "verify", data, part_size)
        direct_hash = hashlib.sha256()
        direct_download(client, "verify", size, direct_hash.update)
        client.remove_object(DIRECT_BUCKET, "verify")
        if tus_hash.hexdigest() != expected or direct_hash.hexdigest() != expected:
            raise RuntimeError("a download did not match the uploaded bytes")
    return {
        "size": size,
        "runs": runs,
        "part_size": part_size,
        "patch_size": patch_size,
        "upload": upload,
        "download": download,
        "rss_idle": rss_idle,
        "rss_peak_upload": rss_peak,
        "verified": True,
    }


def _summary(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} ({min(samples):.0f}-{max(samples):.0f})"


def _ratio(samples: list[float], reference: list[float]) -> str:
    return f"{statistics.median(samples) / statistics.median(reference):.2f}x"


def format_table(result: dict[str, Any]) -> str:
    """The Markdown table for a `measure_s3` result."""
    size_mib = result["size"] // MiB
    patch_mib = result["patch_size"] // MiB
    up, down = result["upload"], result["download"]
    lines = [
        f"S3 store vs direct minio client: {size_mib} MiB, part size "
        f"{result['part_size'] // MiB} MiB, {result['runs']} runs each, moto S3 on 127.0.0.1",
        "",
        "| path | upload MiB/s, median (min-max) | vs direct | download MiB/s, median (min-max) "
        "| vs direct |",
        "|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        label = LABELS[name].format(patch=patch_mib, part=result["part_size"] // MiB)
        lines.append(
            f"| {label} | {_summary(up[name])} | {_ratio(up[name], up['direct'])} "
            f"| {_summary(down[name])} | {_ratio(down[name], down['direct'])} |"
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
    parser.add_argument("--runs", type=int, default=3)
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
