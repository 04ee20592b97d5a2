"""The S3 store under gunicorn: index rebuild after Redis loss, two instances, start-up, memory.

Every server here runs `tusserver serve` in a subprocess with TUSSERVER_STORAGE=s3 against a moto
S3 endpoint on 127.0.0.1, in a bucket of its own that is dropped afterwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.live import ROOT, LiveServer, drop_prefix, live_server
from tests.support.roundtrip import RSS_GROWTH_LIMIT, GiB, round_trip
from tests.support.s3 import (
    drop_bucket,
    make_s3_settings,
    moto_process,
    server_env,
    unique_bucket,
)
from tests.support.tus_http import open_patch, patch, wait_for_offset
from tusserver.embedded_redis import free_port
from tusserver.storage.s3 import S3Store

TUS = {"Tus-Resumable": "1.0.0"}
PART_SIZE = 128 * 1024


# -- helpers ---------------------------------------------------------------------------------


def s3_env(endpoint: str, bucket: str, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """The TUSSERVER_* variables of a server on `endpoint`/`bucket` and Redis `prefix`."""
    env = server_env(endpoint, bucket, PART_SIZE)
    env.update({"TUSSERVER_REDIS_URL": redis_url, "TUSSERVER_REDIS_PREFIX": prefix})
    env.update(extra)
    return env


@contextmanager
def s3_bucket(endpoint: str) -> Iterator[str]:
    """A fresh bucket name; the bucket (created by the server) and its objects go afterwards."""
    bucket = unique_bucket("e2e")
    try:
        yield bucket
    finally:
        drop_bucket(S3Store(make_s3_settings(endpoint, bucket)))


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m tusserver <args>` with exactly these TUSSERVER_* variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "tusserver", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def create(base: str, length: int | None, **headers: str) -> str:
    sent = {**TUS, **{k.replace("_", "-"): v for k, v in headers.items()}}
    if length is None:
        sent["Upload-Defer-Length"] = "1"
    else:
        sent["Upload-Length"] = str(length)
    response = requests.post(f"{base}/files/", headers=sent, timeout=10)
    assert response.status_code == 201, response.text
    return urlsplit(response.headers["Location"]).path


def head(url: str) -> requests.Response:
    response = requests.head(url, headers=TUS, timeout=10)
    assert response.status_code == 200, response.status_code
    return response


def uid(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- (a) rebuild-index after losing Redis ----------------------------------------------------


def test_rebuild_index_restores_uploads_after_redis_loss(
    tmp_path: Path, redis_url: str, moto_endpoint: str
) -> None:
    one = os.urandom(3 * PART_SIZE + 1234)  # complete, two PATCHes
    two = os.urandom(PART_SIZE // 2 + 17)  # complete, length deferred until its last PATCH
    three = os.urandom(5 * PART_SIZE)  # incomplete
    prefix = f"tuse2e:{uuid.uuid4().hex[:10]}:"
    with s3_bucket(moto_endpoint) as bucket:
        env = s3_env(moto_endpoint, bucket, redis_url, prefix)
        with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
            base = server.url
            path_one = create(base, len(one), Upload_Metadata="filename b25lLmJpbg==")
            assert patch(base + path_one, 0, one[:1000]).status_code == 204
            assert patch(base + path_one, 1000, one[1000:]).status_code == 204
            path_two = create(base, None)
            assert patch(base + path_two, 0, two[:100]).status_code == 204
            last = requests.patch(
                base + path_two,
                data=two[100:],
                headers={
                    **TUS,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": "100",
                    "Upload-Length": str(len(two)),
                },
                timeout=10,
            )
            assert last.status_code == 204, last.text
            path_three = create(base, len(three))
            committed = 2 * PART_SIZE + 99
            assert patch(base + path_three, 0, three[:committed]).status_code == 204

            drop_prefix(redis_url, prefix)  # Redis lost everything this server knew
            assert requests.head(base + path_one, headers=TUS, timeout=10).status_code == 404

            result = run_cli(["rebuild-index"], {**env, "TUSSERVER_DATA_DIR": str(tmp_path)})

            assert result.returncode == 0, result.stderr
            lines = result.stdout.strip().splitlines()
            assert lines[-1] == "restored 3 upload(s), kept 0 already indexed", result.stdout
            described = {line.split()[1].rstrip(":"): line for line in lines[:-1]}
            assert set(described) == {uid(path_one), uid(path_two), uid(path_three)}
            assert f": {committed} of {len(three)} bytes" in described[uid(path_three)]
            assert f": {len(two)} of {len(two)} bytes" in described[uid(path_two)]
            assert all(line.startswith("restored ") for line in lines[:-1])

            info_one = head(base + path_one)
            assert info_one.headers["Upload-Offset"] == str(len(one))
            assert info_one.headers["Upload-Length"] == str(len(one))
            assert info_one.headers["Upload-Metadata"] == "filename b25lLmJpbg=="
            assert head(base + path_two).headers["Upload-Offset"] == str(len(two))
            assert head(base + path_three).headers["Upload-Offset"] == str(committed)
            assert sha256(requests.get(base + path_one, timeout=30).content) == sha256(one)
            download_two = requests.get(base + path_two, timeout=30)
            assert download_two.status_code == 200, download_two.text
            assert sha256(download_two.content) == sha256(two)

            resumed = patch(base + path_three, committed, three[committed:])
            assert resumed.status_code == 204, resumed.text
            assert resumed.headers["Upload-Offset"] == str(len(three))
            assert sha256(requests.get(base + path_three, timeout=30).content) == sha256(three)

            again = run_cli(["rebuild-index"], {**env, "TUSSERVER_DATA_DIR": str(tmp_path)})
            assert again.returncode == 0, again.stderr
            assert again.stdout.strip().splitlines()[-1] == (
                "restored 0 upload(s), kept 3 already indexed"
            )


# -- (b) two instances sharing one Redis prefix and one bucket -------------------------------


def test_two_instances_share_one_upload(tmp_path: Path, redis_url: str, moto_endpoint: str) -> None:
    data = os.urandom(1_600_000)
    chunk = 300_000
    prefix = f"tuse2e:{uuid.uuid4().hex[:10]}:"
    with s3_bucket(moto_endpoint) as bucket, ExitStack() as stack:
        env = s3_env(moto_endpoint, bucket, redis_url, prefix)
        servers = [
            stack.enter_context(live_server(tmp_path / name, redis_url, env=env, workers=1))
            for name in ("a", "b")
        ]
        path = create(servers[0].url, len(data))
        urls = [server.url + path for server in servers]

        offset = 0
        for turn in range(2):  # a, b: whole PATCHes
            response = patch(urls[turn % 2], offset, data[offset : offset + chunk])
            assert response.status_code == 204, response.text
            offset += chunk
            assert head(urls[(turn + 1) % 2]).headers["Upload-Offset"] == str(offset)

        # a: half a body, then the client vanishes; b sees what arrived and takes over.
        half = chunk // 2
        sock = open_patch(urls[0], offset, chunk, data[offset : offset + half])
        time.sleep(0.3)
        sock.close()
        assert wait_for_offset(urls[1], offset + half) == offset + half
        offset = int(head(urls[1]).headers["Upload-Offset"])

        turn = 1
        while offset < len(data):
            response = patch(urls[turn % 2], offset, data[offset : offset + chunk])
            assert response.status_code == 204, response.text
            offset = int(response.headers["Upload-Offset"])
            turn += 1

        for url in urls:
            download = requests.get(url, timeout=30)
            assert download.status_code == 200
            assert sha256(download.content) == sha256(data)


# -- (c) start-up against an unreachable endpoint --------------------------------------------


@pytest.mark.parametrize(
    "command", [["serve", "--workers", "1"], ["rebuild-index"], ["cleanup"]], ids=lambda c: c[0]
)
def test_unreachable_endpoint_is_one_clear_line(
    tmp_path: Path, redis_url: str, command: list[str]
) -> None:
    closed = free_port()  # bound, then closed: nothing listens there
    port = free_port()
    args = [*command, "--port", str(port)] if command[0] == "serve" else command
    env = s3_env(f"127.0.0.1:{closed}", "tusserver", redis_url, "tuse2e:unused:")
    env["TUSSERVER_DATA_DIR"] = str(tmp_path / "data")

    result = run_cli(args, env, timeout=30)  # it gives up by itself (a hang raises here)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{closed}" in last and "unreachable" in last, result.stderr
    with pytest.raises(requests.ConnectionError):  # and it is not serving anything
        requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2)


# -- (d) 1 GiB through the S3 store ----------------------------------------------------------


@pytest.mark.slow
def test_one_gib_through_s3_keeps_memory_flat(tmp_path: Path, redis_url: str) -> None:
    prefix = f"tuse2e:{uuid.uuid4().hex[:10]}:"
    with moto_process() as endpoint:
        # The server's growth follows the part size (a part is buffered whole for its PUT, and
        # downloads read one part ahead), never the file's size: 4 MiB parts keep that growth
        # well inside the limit; with 8 MiB parts under the gevent worker it sat at ~68 MiB.
        env = s3_env(endpoint, "tus-memory", redis_url, prefix, TUSSERVER_S3_PART_SIZE="4M")
        with live_server(tmp_path / "data", redis_url, env=env) as server:
            measure_one_gib(server)


def measure_one_gib(server: LiveServer) -> None:
    result = round_trip(server, GiB)
    print(f"\nS3 store, 1 GiB: {result.describe()}")
    assert result.upload_peak_rss - result.idle_rss < RSS_GROWTH_LIMIT
    assert result.download_peak_rss - result.idle_rss < RSS_GROWTH_LIMIT
