"""A near-limit JSON upload and its JSON download keep the server's memory well below the file.

The limit is raised to 32 MiB so the file dwarfs the server's noise: decoding the body in memory
(the JSON document, then the base64 string, then the file) would grow the worker by well over
100 MiB; streaming it grows it by a few read chunks.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.live import LiveServer, live_server
from tests.support.procstats import PeakRss, tree_rss

MiB = 1024 * 1024
LIMIT = 32 * MiB
SIZE = LIMIT - 1000
GROWTH_BOUND = LIMIT // 2
"""Half the file: what the worker may grow by while it takes or gives the whole file."""
BLOCK = 3 * 64 * 1024


def file_blocks() -> Iterator[bytes]:
    """SIZE bytes of varied data, in blocks of a multiple of 3 bytes (base64 joins cleanly)."""
    sent = 0
    counter = 0
    while sent < SIZE:
        seed = hashlib.sha256(counter.to_bytes(8, "big")).digest()
        block = (seed * (BLOCK // len(seed) + 1))[: min(BLOCK, SIZE - sent)]
        counter += 1
        sent += len(block)
        yield block


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    env = {"TUSSERVER_JSON_UPLOAD_MAX": str(LIMIT)}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as running:
        yield running


def test_near_limit_json_upload_and_content_keep_memory_flat(server: LiveServer) -> None:
    expected = hashlib.sha256()
    encoded_size = 4 * -(-SIZE // 3)
    head = b'{"filename": "big.bin", "content_base64": "'
    tail = b'"}'
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    connection.request("GET", "/api/health")
    connection.getresponse().read()
    idle = tree_rss(server.pid)

    with PeakRss(server.pid) as upload_peak:
        connection.putrequest("POST", "/api/files")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(head) + encoded_size + len(tail)))
        connection.endheaders()
        connection.send(head)
        for block in file_blocks():
            expected.update(block)
            connection.send(base64.b64encode(block))
        connection.send(tail)
        response = connection.getresponse()
        made = json.loads(response.read())
    assert response.status == 201, made
    assert made["size"] == SIZE and made["complete"]

    with PeakRss(server.pid) as download_peak:
        connection.request("GET", f"/api/uploads/{made['id']}/content")
        response = connection.getresponse()
        assert response.status == 200
        decoded = hashlib.sha256()
        prefix = b""
        while b'"content_base64": "' not in prefix:
            prefix += response.read(1)
        carry = b""
        while chunk := response.read(4 * 64 * 1024):
            data = carry + chunk
            if data.endswith(b'"}'):
                data = data[:-2]
            usable = len(data) - len(data) % 4
            decoded.update(base64.b64decode(data[:usable]))
            carry = data[usable:]
        if carry.endswith(b'"}'):
            carry = carry[:-2]
        decoded.update(base64.b64decode(carry))
    connection.close()
    assert decoded.hexdigest() == expected.hexdigest()

    grew_up = upload_peak.peak - idle
    grew_down = download_peak.peak - idle
    print(
        f"\nJSON upload of {SIZE / MiB:.0f} MiB: RSS idle {idle / MiB:.1f} MiB, "
        f"+{grew_up / MiB:.1f} MiB taking it, +{grew_down / MiB:.1f} MiB giving it back"
    )
    assert grew_up < GROWTH_BOUND
    assert grew_down < GROWTH_BOUND
