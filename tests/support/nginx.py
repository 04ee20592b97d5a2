"""nginx in front of a test server, configured from compose/nginx/tusserver.conf.template.

The template the compose stack mounts into the nginx image is filled in the same way here
(`${NGINX_PORT}`, `${APP_UPSTREAM}`; nginx's own `$variables` stay) and wrapped in a
minimal main configuration that runs as an ordinary user: pid file, logs and every temporary
path live in the test's folder, so the test can also check that nginx buffered nothing to disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import string
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tusserver.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "compose" / "nginx" / "tusserver.conf.template"

MAIN = """\
{user}worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 16384; }}
worker_rlimit_nofile 40000;
http {{
    access_log off;
    client_body_temp_path {folder}/client_body_temp;
    proxy_temp_path {folder}/proxy_temp;
    fastcgi_temp_path {folder}/fastcgi_temp;
    uwsgi_temp_path {folder}/uwsgi_temp;
    scgi_temp_path {folder}/scgi_temp;
    include {folder}/tusserver.conf;
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, which is not on every user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def render(port: int, upstream: str) -> str:
    """The compose template with its two placeholders filled in, nginx's variables untouched."""
    return string.Template(TEMPLATE.read_text()).safe_substitute(
        NGINX_PORT=f"127.0.0.1:{port}", APP_UPSTREAM=upstream
    )


def upstream_servers(ports: Sequence[int]) -> str:
    """`APP_UPSTREAM` for several app servers: the template's one `server ...;` line becomes one
    `server` directive per app, on one line (the template names the placeholder in a comment
    too). nginx balances round robin and skips a server that refuses connections."""
    return "; server ".join(f"127.0.0.1:{port}" for port in ports)


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_body_temp(self) -> Path:
        return self.folder / "client_body_temp"

    def buffered_files(self) -> list[Path]:
        """Files nginx wrote to its temporary folders (request bodies, proxied responses)."""
        found: list[Path] = []
        for name in ("client_body_temp", "proxy_temp"):
            found += [path for path in (self.folder / name).rglob("*") if path.is_file()]
        return found

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "error.log").read_text(errors="replace")
        return ""


@contextlib.contextmanager
def running_nginx(binary: str, upstream_port: int | Sequence[int], folder: Path) -> Iterator[Nginx]:
    """nginx on a free port of 127.0.0.1 in front of 127.0.0.1:`upstream_port` (or of each of
    several ports)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ports = [upstream_port] if isinstance(upstream_port, int) else list(upstream_port)
    (folder / "tusserver.conf").write_text(render(port, upstream_servers(ports)))
    # As root, nginx would run its workers as `nobody`, who cannot enter the test's folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN.format(folder=folder, user=user))
    command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx rejected the configuration:\n{check.stderr}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nginx = Nginx(process, port, folder)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{nginx.error_log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nginx did not start listening")
            time.sleep(0.05)
        yield nginx
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
