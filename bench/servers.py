"""The servers under test, each started on a free local port, and /proc process-tree stats."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NODE_PACKAGES = ("@tus/server", "@tus/file-store")

NODE_SERVER = """\
// @tus/server as a Node cluster: as many processes as tusserver has gunicorn workers, sharing
// one listening port (the primary hands out connections round-robin), so every scenario
// compares the same number of processes on both sides.
import cluster from 'node:cluster';
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, directory, processes] = process.argv.slice(2);
if (cluster.isPrimary) {
  for (let i = 0; i < Number(processes); i += 1) cluster.fork();
  cluster.on('exit', (worker, code) => console.error(`worker exited: ${code}`));
} else {
  const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
  http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), '127.0.0.1');
  // Node 20's web streams can throw 'ReadableStream is already closed' from inside undici after
  // a response; that would end the process, so it is logged (and counted by bench/run.py).
  process.on('uncaughtException', (error) => console.error('uncaughtException:', error.message));
}
"""


# Process-tree measurements are shared with the memory tests; re-exported for bench/run.py.
from tests.support.procstats import (  # noqa: E402, F401
    descendants,
    stop_process,
    tree_cpu,
    tree_rss,
)
from tusserver.embedded_redis import free_port  # noqa: E402

# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """One running server: its name, port, process and where it keeps upload `<id>`."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    workers: int
    kind: str  # "ours", "wsgi-input", "socket" or "node"
    idle_rss: int = 0
    extra_pids: list[int] = field(default_factory=list)  # CPU counted too (ours: its Redis)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds of the server's process tree and its helpers so far."""
        return tree_cpu(self.pid) + sum(tree_cpu(pid) for pid in self.extra_pids)

    def stored_file(self, upload_id: str) -> Path:
        return self.data_dir / upload_id

    def remove_upload(self, upload_id: str) -> None:
        for path in (self.stored_file(upload_id), self.data_dir / f"{upload_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_ready(server: Server, method: str, path: str, ok: int, timeout: float = 60) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            connection.request(method, path, headers={"Tus-Resumable": "1.0.0"})
            status = connection.getresponse().status
            connection.close()
            if status == ok:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not become ready:\n{server.log_tail()}")


def _popen(command: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}


def serve_defaults() -> tuple[int, int]:
    """`tusserver serve`'s default --workers and --threads (so the baselines use the same)."""
    from tusserver.cli import serve

    defaults = {param.name: param.default for param in serve.params}
    return int(defaults["workers"]), int(defaults["threads"])


def default_worker_class() -> str:
    """The worker class `tusserver serve` uses when none is given."""
    from tusserver.settings import Settings

    return str(Settings().worker_class)


def start_ours(
    name: str,
    base: Path,
    redis: Any,
    fsync: bool,
    workers: int,
    threads: int,
    extra_env: dict[str, str] | None = None,
    worker_class: str | None = None,
) -> Server:
    """`tusserver serve` with `worker_class` (None: what tusserver ships with, gevent).

    The baseline apps always run gthread (a plain WSGI app's usual worker); ours runs what a
    user gets by default, so the figures are the ones a deployment sees.
    """
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _clean_env()
    env.update(
        {
            "TUSSERVER_DATA_DIR": str(data),
            "TUSSERVER_REDIS_URL": redis.url,
            "TUSSERVER_REDIS_PREFIX": f"bench:{name}:",
            "TUSSERVER_FSYNC": "true" if fsync else "false",
            "TUSSERVER_AUTH": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    command = [sys.executable, "-m", "tusserver", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    command += ["--worker-class", worker_class or default_worker_class()]
    log_path = base / f"{name}.log"
    process = _popen(command, env, log_path, ROOT)
    server = Server(name, port, process, data / "uploads", log_path, workers, "ours")
    server.extra_pids.append(redis.process.pid)
    return _wait_ready(server, "GET", "/api/health", 200)


def start_baseline(
    name: str, base: Path, reader: str, fsync: bool, workers: int, threads: int
) -> Server:
    """bench/baseline_app.py reading bodies with `reader` ("wsgi-input" or "socket")."""
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "baseline_app.py"), "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads), "--dir", str(data)]
    command += ["--reader", reader]
    if fsync:
        command.append("--fsync")
    log_path = base / f"{name}.log"
    process = _popen(command, _clean_env(), log_path, ROOT)
    server = Server(name, port, process, data, log_path, workers, reader)
    return _wait_ready(server, "OPTIONS", "/files/", 204)


def install_node(base: Path) -> tuple[Path | None, str]:
    """npm-install @tus/server and @tus/file-store into `base/node`; (folder, message)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None, "node/npm not found: the @tus/server comparison is skipped"
    folder = base / "node"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "tus-bench", "private": true, "type": "module"}')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NODE_PACKAGES],
            cwd=folder,
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        return None, f"npm install failed, @tus/server skipped: {output.decode()[-500:]}"
    (folder / "server.mjs").write_text(NODE_SERVER)
    versions = []
    for package in NODE_PACKAGES:
        with contextlib.suppress(OSError, ValueError):
            import json

            meta = json.loads((folder / "node_modules" / package / "package.json").read_text())
            versions.append(f"{package} {meta['version']}")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    return folder, ", ".join(versions) + f" on Node {node_version.strip()}"


def start_node(name: str, base: Path, folder: Path, processes: int) -> Server:
    """@tus/server as a cluster of `processes` Node processes on one port."""
    data = base / name
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node = shutil.which("node") or "node"
    log_path = base / f"{name}.log"
    command = [node, "server.mjs", str(port), str(data), str(processes)]
    process = _popen(command, _clean_env(), log_path, folder)
    server = Server(name, port, process, data, log_path, processes, "node")
    return _wait_ready(server, "OPTIONS", "/files", 204)
