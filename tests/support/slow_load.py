"""The slow-client load: trickling uploads, idle keep-alive connections and a fresh client.

`run_load(host, port, ...)` runs, against one tus server:
- `uploads` uploads that each trickle their PATCH bodies at `rate` bytes/s (4 KiB at a time),
  one PATCH of `patch_bytes` after the other on one keep-alive connection;
- `idle` connections that each send one `OPTIONS` and then sit idle (keep-alive);
- a fresh client in another process, over and over: a new connection, `POST` + one 1 MiB
  `PATCH` + `HEAD` + a 1 MiB `GET` (checked byte for byte), timed from first byte to last.

The load runs in a child process (asyncio; no thread per connection), the fresh client in
another, so neither's timing is delayed by the other or by the coordinator. Connections use
several source addresses in 127.0.0.0/8 (with `IP_BIND_ADDRESS_NO_PORT`), so tens of thousands
of sockets to one server port never run out of local ports. Everything goes to `host`, which
callers keep on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import multiprocessing
import os
import resource
import socket
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tusserver.gc_tuning import tune_for_many_connections

MiB = 1024 * 1024
STEP = 4096
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
SOURCES = [f"127.0.0.{index}" for index in range(2, 10)]


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class LoadResult:
    """What the load saw: per-upload progress, idle connections held, fresh-client latencies."""

    uploads: int
    rate: int
    seconds: float
    acked_start: list[int] = field(default_factory=list)  # offsets at the window's start
    acked_end: list[int] = field(default_factory=list)  # offsets at its end
    sent: list[int] = field(default_factory=list)  # body bytes each upload sent in the window
    errors: dict[str, int] = field(default_factory=dict)
    idle_opened: int = 0
    idle_held: int = 0
    probe_latencies: list[float] = field(default_factory=list)
    probe_errors: list[str] = field(default_factory=list)
    probe_phases: list[list[float]] = field(default_factory=list)  # seconds per PHASES step
    probe_starts: list[float] = field(default_factory=list)  # when each began, in the window
    load_lag: list[float] = field(default_factory=list)  # the load's loop lateness, seconds
    rss_samples: list[int] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def progressed(self) -> int:
        """Uploads whose server-acknowledged offset moved during the window."""
        return sum(1 for a, b in zip(self.acked_start, self.acked_end, strict=True) if b > a)

    @property
    def stalled(self) -> int:
        return self.uploads - self.progressed

    def percentile(self, fraction: float) -> float:
        values = sorted(self.probe_latencies)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(len(values) * fraction))]

    def summary(self) -> dict[str, Any]:
        progress = [b - a for a, b in zip(self.acked_start, self.acked_end, strict=True)]
        return {
            "uploads": self.uploads,
            "progressed": self.progressed,
            "min_progress": min(progress) if progress else 0,
            "median_progress": statistics.median(progress) if progress else 0,
            "expected_progress": self.rate * self.seconds,
            "sent_median": statistics.median(self.sent) if self.sent else 0,
            "idle_opened": self.idle_opened,
            "idle_held": self.idle_held,
            "probes": len(self.probe_latencies),
            "probe_errors": len(self.probe_errors),
            "p50": self.percentile(0.50),
            "p99": self.percentile(0.99),
            "max": max(self.probe_latencies) if self.probe_latencies else float("nan"),
            "rss_peak": max(self.rss_samples) if self.rss_samples else 0,
            "rss_median": statistics.median(self.rss_samples) if self.rss_samples else 0,
            "cpu_cores": self.cpu_seconds / self.seconds if self.seconds else 0.0,
            "errors": dict(self.errors),
        }


# -- the asyncio load ------------------------------------------------------------------------


class _Load:
    def __init__(self, host: str, port: int, path: str, extra_headers: dict[str, str]):
        self.host = host
        self.port = port
        self.path = path.rstrip("/") or "/files"
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in extra_headers.items())
        self.next_source = 0
        self.errors: dict[str, int] = {}

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        if self.host.startswith("127."):
            sock.bind((SOURCES[self.next_source % len(SOURCES)], 0))
            self.next_source += 1
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=1 << 16)

    def count(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:  # @tus/server sends some answers chunked
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
        return status, headers
    length = int(headers.get("content-length", "0") or 0)
    if length:
        await reader.readexactly(length)
    return status, headers


async def _slow_upload(
    load: _Load,
    index: int,
    length: int,
    patch_bytes: int,
    rate: int,
    acked: list[int],
    sent: list[int],
    counting: asyncio.Event,
    stop: asyncio.Event,
) -> None:
    chunk = os.urandom(STEP)
    interval = STEP / rate
    try:
        reader, writer = await load.connect()
        writer.write(
            f"POST {load.path}/ HTTP/1.1\r\nHost: {load.host}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Length: {length}\r\nContent-Length: 0\r\n{load.extra}\r\n".encode()
        )
        status, headers = await _response(reader)
        if status != 201:
            load.count(f"create {status}")
            return
        target = urlsplit(headers["location"]).path
        offset = 0
        # Spread the uploads' ticks evenly instead of all waking at once.
        await asyncio.sleep(interval * (index % 97) / 97)
        # Real clients do not start in step: the first PATCH is cut short by a share of a
        # whole one that differs per upload, so that the PATCHes end spread evenly over a
        # PATCH's duration instead of 2,000 at once every few seconds (same rate, same bytes).
        first = max(STEP, patch_bytes * (index % 64 + 1) // 64 // STEP * STEP)
        while not stop.is_set() and offset < length:
            body = min(first if offset == 0 else patch_bytes, length - offset)
            writer.write(
                f"PATCH {target} HTTP/1.1\r\nHost: {load.host}\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
                f"Content-Length: {body}\r\n{load.extra}\r\n".encode()
            )
            done = 0
            next_tick = time.monotonic()
            while done < body:
                if stop.is_set():
                    writer.close()
                    return
                piece = min(STEP, body - done)
                writer.write(chunk[:piece])
                await writer.drain()
                done += piece
                if counting.is_set():
                    sent[index] += piece
                next_tick += interval
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            status, headers = await _response(reader)
            if status != 204:
                load.count(f"patch {status}")
                return
            offset = int(headers["upload-offset"])
            acked[index] = offset
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError) as exc:
        if not stop.is_set():
            load.count(type(exc).__name__)


async def _idle(load: _Load, held: list[int], index: int, stop: asyncio.Event) -> None:
    try:
        reader, writer = await load.connect()
        writer.write(
            f"OPTIONS {load.path}/ HTTP/1.1\r\nHost: {load.host}\r\n{load.extra}\r\n".encode()
        )
        await _response(reader)
        held[index] = 1
        eof = asyncio.ensure_future(reader.read(1))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if eof.done():
            held[index] = 0  # the server closed it
        else:
            eof.cancel()
        stopped.cancel()
        writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        load.count(f"idle {type(exc).__name__}")


async def _lag(samples: list[float], counting: asyncio.Event, stop: asyncio.Event) -> None:
    """How late the load's own event loop wakes up (a starved generator sends late)."""
    step = 0.1
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(step)
        if counting.is_set():
            samples.append(time.monotonic() - before - step)


async def _run(options: dict[str, Any], pipe: Any) -> None:
    load = _Load(options["host"], options["port"], options["path"], options["headers"])
    uploads, idle = options["uploads"], options["idle"]
    acked = [0] * uploads
    sent = [0] * uploads
    held = [0] * idle
    stop = asyncio.Event()
    counting = asyncio.Event()
    lag: list[float] = []
    tasks = [asyncio.ensure_future(_lag(lag, counting, stop))]
    # Idle connections first, then the uploads, each at a bounded opening rate.
    for index in range(idle):
        tasks.append(asyncio.ensure_future(_idle(load, held, index, stop)))
        if index % 200 == 199:
            await asyncio.sleep(0.1)
    for index in range(uploads):
        tasks.append(
            asyncio.ensure_future(
                _slow_upload(
                    load,
                    index,
                    options["length"],
                    options["patch_bytes"],
                    options["rate"],
                    acked,
                    sent,
                    counting,
                    stop,
                )
            )
        )
        if index % 100 == 99:
            await asyncio.sleep(0.1)
    await asyncio.sleep(options["ramp"])
    acked_start = list(acked)
    counting.set()
    pipe.send(("window", sum(held)))
    await asyncio.sleep(options["seconds"])
    acked_end = list(acked)
    idle_held = sum(held)
    counting.clear()  # the window is over: closing 12,000 connections is not loop lag
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    pipe.send(
        (
            "done",
            {
                "acked_start": acked_start,
                "acked_end": acked_end,
                "sent": sent,
                "idle_held": idle_held,
                "errors": load.errors,
                "lag": lag,
            },
        )
    )


def _load_process(options: dict[str, Any], pipe: Any) -> None:
    raise_open_file_limit()
    # The load holds 12,000 connections' objects: with CPython's default collector settings its
    # full collections stopped this event loop for up to 1.4 s (the uploads then sent late).
    # The same remedy as the server's workers.
    tune_for_many_connections()
    asyncio.run(_run(options, pipe))


# -- the fresh client ------------------------------------------------------------------------


PHASES = ("connect", "create", "patch", "head", "get")


def fresh_client_once(
    host: str,
    port: int,
    path: str,
    payload: bytes,
    headers: dict,
    phases: list[float] | None = None,
) -> float:
    """POST + 1 MiB PATCH + HEAD + 1 MiB GET on a new connection; seconds taken.

    `phases`, when given, receives the seconds each step of `PHASES` took (the TCP connect
    first: a full listen queue shows there), to tell where a slow answer waited.
    """
    started = time.monotonic()
    marks = [started]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        tus = {"Tus-Resumable": "1.0.0", **headers}
        connection.connect()
        marks.append(time.monotonic())
        connection.request("POST", f"{path}/", headers={**tus, "Upload-Length": str(len(payload))})
        answer = connection.getresponse()
        answer.read()
        marks.append(time.monotonic())
        if answer.status != 201:
            raise RuntimeError(f"create answered {answer.status}")
        target = urlsplit(answer.getheader("Location")).path
        patch_headers = {
            **tus,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        }
        connection.request("PATCH", target, body=payload, headers=patch_headers)
        answer = connection.getresponse()
        answer.read()
        marks.append(time.monotonic())
        if answer.status != 204:
            raise RuntimeError(f"PATCH answered {answer.status}")
        connection.request("HEAD", target, headers=tus)
        answer = connection.getresponse()
        answer.read()
        marks.append(time.monotonic())
        if answer.getheader("Upload-Offset") != str(len(payload)):
            raise RuntimeError(f"HEAD says offset {answer.getheader('Upload-Offset')}")
        connection.request("GET", target, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        marks.append(time.monotonic())
        if answer.status != 200 or body != payload:
            raise RuntimeError(f"GET answered {answer.status} with {len(body)} bytes")
    finally:
        connection.close()
    if phases is not None:
        phases[:] = [b - a for a, b in itertools.pairwise(marks)]
    return time.monotonic() - started


def _probe_process(options: dict[str, Any], pipe: Any) -> None:
    payload = os.urandom(MiB)
    latencies: list[float] = []
    breakdown: list[list[float]] = []
    errors: list[str] = []
    began = time.monotonic()
    deadline = began + options["seconds"]
    starts: list[float] = []
    while time.monotonic() < deadline:
        phases: list[float] = []
        at = time.monotonic() - began
        try:
            latencies.append(
                fresh_client_once(
                    options["host"],
                    options["port"],
                    options["path"],
                    payload,
                    options["headers"],
                    phases,
                )
            )
            breakdown.append(phases)
            starts.append(at)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)
        time.sleep(options["probe_pause"])
    pipe.send((latencies, errors, breakdown, starts))


# -- the coordinator -------------------------------------------------------------------------


def run_load(
    host: str,
    port: int,
    *,
    uploads: int = 2000,
    idle: int = 10000,
    rate: int = 16 * 1024,
    patch_bytes: int = 128 * 1024,
    length: int = 64 * MiB,
    ramp: float = 15.0,
    seconds: float = 40.0,
    probe_pause: float = 0.1,
    path: str = "/files",
    headers: dict[str, str] | None = None,
    server_pid: int | None = None,
    rss: Any = None,
    cpu: Any = None,
) -> LoadResult:
    """Run the load against `host:port` and return what it saw (see the module docstring).

    `rss()` / `cpu()`, when given, are sampled during the window (the server's process tree).
    """
    raise_open_file_limit()
    options = {
        "host": host,
        "port": port,
        "path": path,
        "headers": headers or {},
        "uploads": uploads,
        "idle": idle,
        "rate": rate,
        "patch_bytes": patch_bytes,
        "length": length,
        "ramp": ramp,
        "seconds": seconds,
        "probe_pause": probe_pause,
    }
    context = multiprocessing.get_context("fork")
    load_end, load_pipe = context.Pipe()
    loader = context.Process(target=_load_process, args=(options, load_pipe), daemon=True)
    loader.start()
    result = LoadResult(uploads=uploads, rate=rate, seconds=seconds)
    try:
        if not load_end.poll(ramp + uploads / 500 + idle / 1000 + 120):
            raise RuntimeError("the load did not reach its window")
        _kind, value = load_end.recv()
        result.idle_opened = int(value)
        probe_end, probe_pipe = context.Pipe()
        prober = context.Process(target=_probe_process, args=(options, probe_pipe), daemon=True)
        prober.start()
        cpu_before = cpu() if cpu else 0.0
        window_end = time.monotonic() + seconds
        while time.monotonic() < window_end:
            if rss:
                result.rss_samples.append(rss())
            time.sleep(0.5)
        result.cpu_seconds = (cpu() - cpu_before) if cpu else 0.0
        if probe_end.poll(120):
            (
                result.probe_latencies,
                result.probe_errors,
                result.probe_phases,
                result.probe_starts,
            ) = probe_end.recv()
        prober.join(10)
        if not load_end.poll(60):
            raise RuntimeError("the load did not finish")
        _kind, done = load_end.recv()
        result.acked_start = done["acked_start"]
        result.acked_end = done["acked_end"]
        result.sent = done["sent"]
        result.idle_held = done["idle_held"]
        result.errors = done["errors"]
        result.load_lag = done["lag"]
    finally:
        loader.join(30)
        if loader.is_alive():
            loader.kill()
    return result
