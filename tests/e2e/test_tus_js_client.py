"""Interoperability with tus-js-client (the reference JavaScript client) running in Node."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.live import LiveServer
from tests.support.npm import INTEROP, install_interop_packages, require_node

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tus_js_client() -> Path:
    return install_interop_packages() / "tus-js-client"


@pytest.mark.parametrize("parallel", [1, 4])
def test_tus_js_client_uploads_and_download_matches(
    server: LiveServer, tus_js_client: Path, tmp_path: Path, parallel: int
) -> None:
    node, _ = require_node()
    source = tmp_path / "random.bin"
    source.write_bytes(os.urandom(9 * MiB + 12345))
    result = subprocess.run(
        [
            node,
            str(INTEROP / "tus_js_upload.mjs"),
            f"{server.url}/files/",
            str(source),
            str(parallel),
            str(2 * MiB),
        ],
        env={**os.environ, "TUS_JS_CLIENT_DIR": str(tus_js_client)},
        capture_output=True,
        text=True,
        timeout=120,
    )
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
