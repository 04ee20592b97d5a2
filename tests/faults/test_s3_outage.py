"""S3 reached through a TCP proxy the test cuts and restores: during a PATCH, during a download.

Every backend failure is a 503 with Retry-After; what S3 acknowledged before the cut counts;
offsets never go back; the upload resumes and its sha256 matches.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.support.app_fixtures import S3_PART_SIZE as P
from tests.support.tcp_proxy import TcpProxy
from tests.support.tus import OCTET, TUS, create, head, patch, send_raw

pytestmark = pytest.mark.parametrize("store_kind", ["s3"], indirect=True)

DATA = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(4 * P // 32))


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[TcpProxy]:
    parts = urlsplit(moto_endpoint if "://" in moto_endpoint else f"http://{moto_endpoint}")
    running = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    yield running
    # Restored, not closed: the apps' teardown (set up before this) still drops its bucket
    # through it. The listener is a daemon thread that ends with the session.
    running.restore()


def offset_of(client: Any, path: str) -> int:
    response = head(client, path)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


class CutsAfter(io.RawIOBase):
    """A request body that cuts the proxy once `after` bytes were read."""

    def __init__(self, data: bytes, after: int, cut: Callable[[], None]):
        self.data, self.after, self.position = data, after, 0
        self.cut: Callable[[], None] | None = cut

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.after and self.cut is not None:
            self.cut()
            self.cut = None
        chunk = self.data[self.position : self.position + 16 * 1024]
        self.position += len(chunk)
        return chunk


def test_s3_cut_during_a_patch(make_app: Callable[..., Flask], proxy: TcpProxy) -> None:
    app = make_app(s3_endpoint=f"http://{proxy.address}")
    client = app.test_client()
    path = create(client, len(DATA))
    acknowledged = [offset_of(client, path)]

    body = CutsAfter(DATA, P + P // 2, proxy.cut)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(client, "PATCH", path, body, headers, len(DATA))

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    proxy.restore()
    acknowledged.append(offset_of(client, path))
    assert acknowledged[-1] == P, "the part S3 acknowledged before the cut is committed"
    while acknowledged[-1] < len(DATA):
        response = patch(client, path, acknowledged[-1], DATA[acknowledged[-1] :])
        assert response.status_code == 204
        acknowledged.append(int(response.headers["Upload-Offset"]))
    assert acknowledged == sorted(acknowledged)
    assert hashlib.sha256(client.get(path).data).digest() == hashlib.sha256(DATA).digest()


def test_s3_cut_before_a_download(make_app: Callable[..., Flask], proxy: TcpProxy) -> None:
    app = make_app(s3_endpoint=f"http://{proxy.address}")
    client = app.test_client()
    path = create(client, len(DATA))
    assert patch(client, path, 0, DATA).status_code == 204

    proxy.cut()
    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
    ranged = client.get(path, headers={"Range": f"bytes={P}-"})
    assert ranged.status_code == 503

    proxy.restore()
    response = client.get(path)
    assert response.status_code == 200
    assert hashlib.sha256(response.data).digest() == hashlib.sha256(DATA).digest()


def test_s3_cut_during_a_download_ends_the_body_short(
    make_app: Callable[..., Flask], proxy: TcpProxy
) -> None:
    """Once the headers went out, a cut can only end the body early: never a wrong byte."""
    app = make_app(s3_endpoint=f"http://{proxy.address}", read_chunk_size=16 * 1024)
    client = app.test_client()
    path = create(client, len(DATA))
    assert patch(client, path, 0, DATA).status_code == 204

    response = client.get(path, buffered=False)
    assert response.status_code == 200
    received = bytearray()
    with pytest.raises(Exception):  # noqa: B017 - the stream breaks; how is the WSGI server's
        for block in response.response:
            received += block
            if len(received) >= P:
                proxy.cut()
    assert bytes(received) == DATA[: len(received)]
    proxy.restore()
    assert client.get(path).data == DATA
