"""Interoperability with tus-js-client (the reference JavaScript client) running in Node."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer
from tests.support.npm import tus_js_upload

MiB = 1024 * 1024


@pytest.mark.parametrize("parallel", [1, 4])
def test_tus_js_client_uploads_and_download_matches(
    server: LiveServer, tmp_path: Path, parallel: int
) -> None:
    source = tmp_path / "random.bin"
    source.write_bytes(os.urandom(9 * MiB + 12345))
    result = tus_js_upload(f"{server.url}/files/", source, parallel, 2 * MiB)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().splitlines()[-1]

    head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.headers["Upload-Offset"] == str(source.stat().st_size)
    if parallel > 1:
        concat = head.headers["Upload-Concat"]
        assert concat.startswith("final;") and len(concat.split()) == parallel
    download = requests.get(url, timeout=60)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(source.read_bytes()).digest()
    listed = requests.get(f"{server.url}/api/uploads", timeout=10).json()
    assert listed["total"] == 1, "partial uploads must not be listed"
    assert listed["uploads"][0]["filename"] == "random.bin"
