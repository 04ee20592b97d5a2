"""Graceful shutdown and idle-body timeouts commit what arrived; nothing is lost."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import requests

from tests.support.live import drop_prefix, live_server, start_server
from tests.support.tus_http import create_upload, open_patch, patch, wait_for_offset


def test_idle_patch_is_ended_after_read_timeout_keeping_its_bytes(
    tmp_path: Path, redis_url: str
) -> None:
    data = os.urandom(1_000_000)
    env = {"TUSSERVER_READ_TIMEOUT": "1"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        url = create_upload(server, len(data))
        idle = open_patch(url, 0, len(data), data[:400_000])  # then nothing more
        try:
            assert wait_for_offset(url, 400_000, timeout=10) == 400_000
            idle.settimeout(5)
            answer = idle.recv(4096)  # the server answered and ended the request
            assert answer.startswith(b"HTTP/1.1 204"), answer[:80]
        finally:
            idle.close()
        assert patch(url, 400_000, data[400_000:]).status_code == 204
        assert requests.get(url, timeout=10).content == data


def test_sigterm_commits_running_patch_and_client_resumes_after_restart(
    tmp_path: Path, redis_url: str
) -> None:
    data = os.urandom(2_000_000)
    data_dir = tmp_path / "data"
    env = {
        "TUSSERVER_REDIS_URL": redis_url,
        "TUSSERVER_REDIS_PREFIX": f"tuse2e:{uuid.uuid4().hex[:10]}:",
        # Far longer than stop() below waits: a server that waited for the running request
        # instead of ending it would be killed there, and exit with -9 instead of 0.
        "TUSSERVER_SHUTDOWN_TIMEOUT": "600",
    }
    first = start_server(data_dir, env=env, workers=1)
    url = create_upload(first, len(data))
    running = open_patch(url, 0, len(data), data[:900_000])  # a PATCH still in flight
    time.sleep(0.5)
    assert first.stop(timeout=20) == 0, "shutdown waited for the running request"
    running.close()

    second = start_server(data_dir, env=env, workers=1, port=int(url.split(":")[2].split("/")[0]))
    try:
        head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
        offset = int(head.headers["Upload-Offset"])
        assert offset == 900_000, "the bytes of the running PATCH were not committed on SIGTERM"
        assert patch(url, offset, data[offset:]).status_code == 204
        body = requests.get(url, timeout=10).content
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    finally:
        second.stop()
        drop_prefix(redis_url, env["TUSSERVER_REDIS_PREFIX"])


def test_slow_but_steady_client_is_not_cut_off_by_the_read_timeout(
    tmp_path: Path, redis_url: str
) -> None:
    """Bytes trickling in (one every 0.1 s) keep a PATCH alive for longer than the timeout."""
    data = os.urandom(40)
    env = {"TUSSERVER_READ_TIMEOUT": "1"}
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        url = create_upload(server, len(data))
        slow = open_patch(url, 0, len(data), data[:1])
        try:
            for index in range(1, len(data)):  # about 4 s in all, 4x the read timeout
                time.sleep(0.1)
                slow.sendall(data[index : index + 1])
            slow.settimeout(10)
            answer = slow.recv(4096)
        finally:
            slow.close()
        assert answer.startswith(b"HTTP/1.1 204"), answer[:80]
        assert b"Upload-Offset: 40" in answer, "the PATCH was ended before all bytes arrived"
        assert requests.get(url, timeout=10).content == data
