"""S3 test support shared by every suite that runs against the S3 store: a local moto server.

moto's `ThreadedMotoServer` speaks the S3 REST API in a thread of the test process, on
127.0.0.1 only. It accepts any credentials, so the store is configured with "testing" keys.
All servers in one process share moto's in-memory backend: give each test its own bucket
(`unique_bucket`) and remove it afterwards (`drop_bucket`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.server import ThreadedMotoServer

from tusserver.settings import Settings

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def start_moto_server() -> tuple[ThreadedMotoServer, str]:
    """Start a moto S3 server on a free port of 127.0.0.1; returns (server, "127.0.0.1:port").

    The server binds port 0 itself and reports the port the OS picked, so there is no window in
    which another process could take a port found free beforehand. Stop it with `server.stop()`.
    """
    # No AWS_* variables are needed: moto's server does not check signatures by default and
    # takes the region from each request. Its access log (a line per request) is muted.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"{host}:{port}"


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
