"""tus-js-client speaking the IETF draft (`protocol: 'ietf-draft-05'`, interop version 6)."""

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


def run_client(tus_js_client: Path, *args: str) -> str:
    node, _ = require_node()
    result = subprocess.run(
        [node, str(INTEROP / "tus_js_ietf.mjs"), *args],
        env={**os.environ, "TUS_JS_CLIENT_DIR": str(tus_js_client)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_upload_aborted_half_way_resumes_from_the_stored_url(
    server: LiveServer, tus_js_client: Path, tmp_path: Path
) -> None:
    source = tmp_path / "twenty.bin"
    data = os.urandom(20 * MiB)
    source.write_bytes(data)
    chunk = str(8 * MiB)

    url = run_client(tus_js_client, "start", f"{server.url}/files/", str(source), chunk)
    state = requests.head(url, headers={"Upload-Draft-Interop-Version": "6"}, timeout=10)
    assert state.status_code == 204
    assert state.headers["Upload-Complete"] == "?0"
    stopped_at = int(state.headers["Upload-Offset"])
    assert 0 < stopped_at < len(data)

    resumed_url, resumed_from = run_client(tus_js_client, "resume", url, str(source), chunk).split()
    assert resumed_url == url
    assert int(resumed_from) == stopped_at, "the client resumed from the server's offset"

    tus_state = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert (
        tus_state.headers["Upload-Offset"] == tus_state.headers["Upload-Length"] == str(len(data))
    )
    download = requests.get(url, timeout=60)
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
    listed = requests.get(f"{server.url}/api/uploads", timeout=10).json()["uploads"]
    assert [u["filename"] for u in listed] == ["twenty.bin"]
