"""The embedded default keeps uploads across restarts; expired uploads are reaped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from tests.support.live import ROOT, live_server, start_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}


def test_upload_survives_restart_on_embedded_redis(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    data_dir = tmp_path / "data"
    first = start_server(data_dir, workers=1)  # no TUSSERVER_REDIS_URL: embedded server
    try:
        created = requests.post(
            f"{first.url}/files/", headers={**TUS, "Upload-Length": str(len(data))}, timeout=10
        )
        path = "/files/" + created.headers["Location"].rsplit("/", 1)[-1]
        sent = requests.patch(
            first.url + path,
            data=data[:100_000],
            headers={**OCTET, "Upload-Offset": "0"},
            timeout=10,
        )
        assert sent.status_code == 204
    finally:
        assert first.stop() == 0
    assert (data_dir / "redis").is_dir(), "the embedded server keeps its files in the data dir"

    second = start_server(data_dir, workers=1)
    try:
        head = requests.head(second.url + path, headers=TUS, timeout=10)
        assert head.status_code == 200
        assert head.headers["Upload-Offset"] == "100000"
        rest = requests.patch(
            second.url + path,
            data=data[100_000:],
            headers={**OCTET, "Upload-Offset": "100000"},
            timeout=10,
        )
        assert rest.status_code == 204
        assert requests.get(second.url + path, timeout=10).content == data
    finally:
        second.stop()


def test_server_reaps_expired_uploads(tmp_path: Path, redis_url: str) -> None:
    env = {"TUSSERVER_EXPIRE_AFTER": "1", "TUSSERVER_CLEANUP_INTERVAL": "1"}
    data_dir = tmp_path / "data"
    with live_server(data_dir, redis_url, env=env, workers=1) as server:
        created = requests.post(
            f"{server.url}/files/", headers={**TUS, "Upload-Length": "10"}, timeout=10
        )
        upload_id = created.headers["Location"].rsplit("/", 1)[-1]
        stored = data_dir / "uploads" / upload_id
        assert stored.exists()
        deadline = time.monotonic() + 10
        while stored.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not stored.exists(), "the reaper did not remove the expired upload's data"
        head = requests.head(f"{server.url}/files/{upload_id}", headers=TUS, timeout=10)
        assert head.status_code == 410


def test_cleanup_command_removes_expired_uploads(tmp_path: Path, redis_url: str) -> None:
    prefix = f"tuse2e:{uuid.uuid4().hex[:10]}:"
    env = {
        "TUSSERVER_EXPIRE_AFTER": "1",
        "TUSSERVER_CLEANUP_INTERVAL": "3600",
        "TUSSERVER_REDIS_PREFIX": prefix,
    }
    data_dir = tmp_path / "data"
    with live_server(data_dir, redis_url, env=env, workers=1) as server:
        created = requests.post(
            f"{server.url}/files/", headers={**TUS, "Upload-Length": "10"}, timeout=10
        )
        upload_id = created.headers["Location"].rsplit("/", 1)[-1]
        time.sleep(1.5)
        command_env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
        command_env.update(
            TUSSERVER_DATA_DIR=str(data_dir),
            TUSSERVER_REDIS_URL=redis_url,
            TUSSERVER_REDIS_PREFIX=prefix,
        )
        result = subprocess.run(
            [sys.executable, "-m", "tusserver", "cleanup"],
            cwd=ROOT,
            env=command_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "removed 1 expired upload" in result.stdout
        assert upload_id in result.stdout
        assert not (data_dir / "uploads" / upload_id).exists()
