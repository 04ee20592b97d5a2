"""One large upload in a single PATCH and its download, with the server's peak memory sampled.

Shared by the memory tests of both data stores: the transfer and its checks are the same, only
the server differs.
"""

from __future__ import annotations

import hashlib
import http.client
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from tests.support.data import expected_sha256, pieces
from tests.support.live import LiveServer
from tests.support.procstats import PeakRss, tree_rss

MiB = 1024 * 1024
GiB = 1024 * MiB
RSS_GROWTH_LIMIT = 64 * MiB


@dataclass(frozen=True)
class RoundTrip:
    """What one upload-then-download cost the server."""

    size: int
    idle_rss: int
    upload_peak_rss: int
    download_peak_rss: int
    upload_seconds: float
    download_seconds: float

    def describe(self) -> str:
        mib = self.size / MiB
        return (
            f"upload {mib / self.upload_seconds:.0f} MiB/s ({self.upload_seconds:.1f} s), "
            f"download {mib / self.download_seconds:.0f} MiB/s ({self.download_seconds:.1f} s); "
            f"RSS idle {self.idle_rss / MiB:.1f} MiB, peak upload "
            f"{self.upload_peak_rss / MiB:.1f} MiB, peak download "
            f"{self.download_peak_rss / MiB:.1f} MiB"
        )


def round_trip(server: LiveServer, size: int) -> RoundTrip:
    """Create an upload, send it in one PATCH, download it; asserts every byte came back."""
    created = requests.post(
        f"{server.url}/files/",
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size)},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    requests.get(f"{server.url}/api/health", timeout=5)  # warm every worker a little
    idle = tree_rss(server.pid)

    expected = expected_sha256(size)
    parts = urlsplit(url)
    with PeakRss(server.pid) as upload_peak:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        connection.putrequest("PATCH", parts.path)
        connection.putheader("Tus-Resumable", "1.0.0")
        connection.putheader("Content-Type", "application/offset+octet-stream")
        connection.putheader("Upload-Offset", "0")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        started = time.monotonic()
        for piece in pieces(0, size):
            connection.send(piece)
        response = connection.getresponse()
        upload_seconds = time.monotonic() - started
        body = response.read()
        connection.close()
    assert response.status == 204, body
    assert response.getheader("Upload-Offset") == str(size)

    actual = hashlib.sha256()
    received = 0
    with PeakRss(server.pid) as download_peak:
        started = time.monotonic()
        with requests.get(url, stream=True, timeout=120) as download:
            assert download.status_code == 200
            assert download.headers["Content-Length"] == str(size)
            for piece in download.iter_content(MiB):
                actual.update(piece)
                received += len(piece)
        download_seconds = time.monotonic() - started

    assert received == size
    assert actual.hexdigest() == expected
    return RoundTrip(
        size, idle, upload_peak.peak, download_peak.peak, upload_seconds, download_seconds
    )
