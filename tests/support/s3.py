"""S3 test support shared by every suite that runs against the S3 store: a local moto server.

moto's `ThreadedMotoServer` speaks the S3 REST API in a thread of the test process, on
127.0.0.1 only. It accepts any credentials, so the store is configured with "testing" keys.
All servers in one process share moto's in-memory backend: give each test its own bucket
(`unique_bucket`) and remove it afterwards (`drop_bucket`).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moto.server import ThreadedMotoServer

from tests.support.procstats import stop_process
from tusserver.settings import Settings

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]


def start_moto_server(port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start a moto S3 server on 127.0.0.1; returns (server, "127.0.0.1:port").

    With port 0 the server binds a port the OS picks and reports it, so there is no window in
    which another process could take a port found free beforehand; a given port restarts a
    stopped server where it was. Stop it with `server.stop()`.
    """
    # No AWS_* variables are needed: moto's server does not check signatures by default and
    # takes the region from each request. Its access log (a line per request) is muted.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"{host}:{bound}"


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto S3 server in a process of its own; yields its endpoint "127.0.0.1:port".

    Keeps large objects and moto's CPU out of the calling process (a benchmark, a 1 GiB test):
    the child runs `start_moto_server` and prints the port it got.
    """
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.support.s3 import start_moto_server\n"
        "server, endpoint = start_moto_server()\n"
        "print(endpoint, flush=True)\n"
        "while True:\n"
        "    time.sleep(3600)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        if not endpoint:
            raise RuntimeError(f"moto server did not start (exit {process.poll()})")
        yield endpoint
    finally:
        stop_process(process, timeout=10)


def server_env(endpoint: str, bucket: str, part_size: int) -> dict[str, str]:
    """The TUSSERVER_* variables of a `tusserver serve` on the S3 store at `endpoint`."""
    return {
        "TUSSERVER_STORAGE": "s3",
        "TUSSERVER_S3_ENDPOINT": endpoint,
        "TUSSERVER_S3_SECURE": "false",
        "TUSSERVER_S3_ACCESS_KEY": ACCESS_KEY,
        "TUSSERVER_S3_SECRET_KEY": SECRET_KEY,
        "TUSSERVER_S3_REGION": REGION,
        "TUSSERVER_S3_BUCKET": bucket,
        "TUSSERVER_S3_PART_SIZE": str(part_size),
    }


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server for the duration of a `with` block; yields its endpoint."""
    server, endpoint = start_moto_server()
    try:
        yield endpoint
    finally:
        server.stop()


def make_s3_settings(endpoint: str, bucket: str, **overrides: Any) -> Settings:
    """Settings for the S3 store against `endpoint` (plain HTTP, "testing" credentials)."""
    values: dict[str, Any] = {
        "storage": "s3",
        "s3_endpoint": endpoint,
        "s3_secure": False,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
        "s3_region": REGION,
        "s3_bucket": bucket,
    }
    values.update(overrides)
    return Settings(**values)


def unique_bucket(label: str = "test") -> str:
    """A fresh, valid bucket name (lower-case, at most 63 characters)."""
    return f"tus-{label[:20].lower()}-{uuid.uuid4().hex[:16]}"


def object_sizes(store: Any, prefix: str = "") -> dict[str, int]:
    """Every object under `prefix` in the store's bucket, as {key: size} (uses `store.client`)."""
    listing = store.client.list_objects(store.bucket, prefix=prefix or None, recursive=True)
    return {obj.object_name: obj.size for obj in listing}


def drop_bucket(store: Any) -> None:
    """Remove every object of the store's bucket and the bucket itself, if it exists."""
    client = store.client
    if not client.bucket_exists(store.bucket):
        return
    names = list(object_sizes(store))
    if names:
        from minio.deleteobjects import DeleteObject  # the client's own type, test-only

        errors = list(client.remove_objects(store.bucket, [DeleteObject(n) for n in names]))
        assert not errors, errors
    client.remove_bucket(store.bucket)


class SpyClient:
    """Wraps the store's client and records the ranged GETs and the responses handed out."""

    def __init__(self, client: Any):
        self._client = client
        self.gets: list[tuple[str, int, int]] = []
        self.responses: list[Any] = []
        self.puts: list[tuple[str, int]] = []

    def get_object(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> Any:
        self.gets.append((key.rsplit("/", 1)[-1].partition(".")[0], offset, length))
        response = self._client.get_object(bucket, key, offset=offset, length=length)
        self.responses.append(response)
        return response

    def put_object(self, bucket: str, key: str, data: Any, length: int, **kwargs: Any) -> Any:
        self.puts.append((key.rsplit("/", 1)[-1], length))
        return self._client.put_object(bucket, key, data, length, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
