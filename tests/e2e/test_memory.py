"""A 1 GiB upload in one PATCH and its download keep the server's memory flat."""

from __future__ import annotations

import hashlib
import http.client
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from bench.procstats import PeakRss, tree_rss
from tests.support.live import LiveServer

MiB = 1024 * 1024
GiB = 1024 * MiB
RSS_GROWTH_LIMIT = 64 * MiB


def blocks(total: int, seed: bytes = b"tusserver") -> Iterator[bytes]:
    """Deterministic, incompressible-looking 1 MiB blocks (a hash chain), `total` bytes in all."""
    block = hashlib.sha512(seed).digest() * (MiB // 64)
    counter = 0
    sent = 0
    while sent < total:
        counter += 1
        prefix = counter.to_bytes(8, "big")
        piece = (prefix + block[8:])[: min(MiB, total - sent)]
        sent += len(piece)
        yield piece


@pytest.mark.slow
def test_one_gib_upload_and_download_keep_memory_flat(server: LiveServer) -> None:
    created = requests.post(
        f"{server.url}/files/",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(GiB)},
        timeout=10,
    )
    url = created.headers["Location"]
    requests.get(f"{server.url}/api/health", timeout=5)  # warm every worker a little
    idle = tree_rss(server.pid)

    expected = hashlib.sha256()
    parts = urlsplit(url)
    with PeakRss(server.pid) as upload_peak:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        connection.putrequest("PATCH", parts.path)
        connection.putheader("Tus-Resumable", "1.0.0")
        connection.putheader("Content-Type", "application/offset+octet-stream")
        connection.putheader("Upload-Offset", "0")
        connection.putheader("Content-Length", str(GiB))
        connection.endheaders()
        started = time.monotonic()
        for block in blocks(GiB):
            expected.update(block)
            connection.send(block)
        response = connection.getresponse()
        upload_seconds = time.monotonic() - started
        assert response.status == 204, response.read()
        assert response.getheader("Upload-Offset") == str(GiB)
        connection.close()

    actual = hashlib.sha256()
    with PeakRss(server.pid) as download_peak:
        started = time.monotonic()
        with requests.get(url, stream=True, timeout=120) as download:
            assert download.status_code == 200
            assert download.headers["Content-Length"] == str(GiB)
            for chunk in download.iter_content(MiB):
                actual.update(chunk)
        download_seconds = time.monotonic() - started

    assert actual.digest() == expected.digest()
    print(
        f"\n1 GiB upload {1024 / upload_seconds:.0f} MiB/s, download "
        f"{1024 / download_seconds:.0f} MiB/s; RSS idle {idle / MiB:.1f} MiB, peak upload "
        f"{upload_peak.peak / MiB:.1f} MiB, peak download {download_peak.peak / MiB:.1f} MiB"
    )
    assert upload_peak.peak - idle < RSS_GROWTH_LIMIT
    assert download_peak.peak - idle < RSS_GROWTH_LIMIT
