"""A real server for end-to-end tests: `tusserver serve` (gunicorn) in a subprocess.

The server gets its own data directory, a free port and a private Redis key prefix on the test
session's Redis; `stop()` sends SIGTERM and waits, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.procstats import stop_process, tree_rss
from tusserver.embedded_redis import free_port

__all__ = ["LiveServer", "free_port", "live_server", "start_server", "tree_rss"]

ROOT = Path(__file__).resolve().parents[2]


class LiveServer:
    """One running `tusserver serve`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path):
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return stop_process(self.process, sig, timeout)  # type: ignore[return-value]


def start_server(
    data_dir: Path,
    env: dict[str, str] | None = None,
    workers: int = 2,
    threads: int = 8,
    port: int | None = None,
    timeout: float = 30,
) -> LiveServer:
    """Start the server and wait until /api/health answers 200."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
    # Open mode unless a test asks for accounts: the e2e tests exercise the protocol.
    full_env.update(
        {"TUSSERVER_DATA_DIR": str(data_dir), "TUSSERVER_AUTH": "none", "PYTHONUNBUFFERED": "1"}
    )
    full_env.update(env or {})
    log_path = data_dir / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "tusserver",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


@contextmanager
def live_server(data_dir: Path, redis_url: str, **kwargs: object) -> Iterator[LiveServer]:
    """A server on the given Redis with a private key prefix; stopped and cleaned up after."""
    env = dict(kwargs.pop("env", None) or {})  # type: ignore[call-overload]
    prefix = env.setdefault("TUSSERVER_REDIS_PREFIX", f"tuse2e:{uuid.uuid4().hex[:10]}:")
    env.setdefault("TUSSERVER_REDIS_URL", redis_url)
    server = start_server(data_dir, env=env, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
        drop_prefix(env["TUSSERVER_REDIS_URL"], prefix, env.get("TUSSERVER_REDIS_MODE", "single"))


def drop_prefix(redis_url: str, prefix: str, mode: str = "single") -> None:
    """Delete every Redis key a test server wrote under its prefix (on every node of a cluster)."""
    from tusserver.state.connect import connect

    client = connect(redis_url, mode=mode)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
