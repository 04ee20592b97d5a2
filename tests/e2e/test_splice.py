"""PATCH bodies spliced from the socket into the file (tusserver/splice.py) under real gunicorn.

A fast sender's body goes socket -> pipe -> file without passing through Python; what a user
notices is only that the stored bytes are exactly the body, HTTP on the connection stays in
step, a body cut short keeps what arrived, a checksum is still verified, and the operator's
`tusserver_bytes_spliced` metric says which path the bytes took.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.test_wsgi_input import Raw
from tests.support.live import LiveServer, live_server
from tests.support.tus_http import create_upload, open_patch, patch, wait_for_offset

MiB = 1024 * 1024
BODY = os.urandom(8 * MiB + 4099)


def spliced(server: LiveServer) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(r"^tusserver_bytes_spliced_total ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found is not None, "tusserver_bytes_spliced is not in /metrics"
    return float(found.group(1))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def gevent_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveServer]:
    """The default server: gevent worker, local store, fsync on, splice on."""
    with live_server(tmp_path_factory.mktemp("splice") / "data", redis_url) as running:
        yield running


def test_a_large_patch_is_spliced_stored_exactly_and_the_connection_stays_in_step(
    gevent_server: LiveServer,
) -> None:
    before = spliced(gevent_server)
    raw = Raw(gevent_server.url)
    raw.send("POST", "/files/", {"Upload-Length": str(len(BODY) + 10)})
    status, headers, _ = raw.response()
    assert status == 201
    path = urlsplit(headers["location"]).path

    # The PATCH and a HEAD in one send: the HEAD must not be taken for body bytes.
    raw.send(
        "PATCH",
        path,
        {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
        BODY,
    )
    raw.send("HEAD", path, {})
    status, headers, _ = raw.response()
    assert (status, headers["upload-offset"]) == (204, str(len(BODY)))
    status, headers, _ = raw.response(head_only=True)
    assert (status, headers["upload-offset"]) == (200, str(len(BODY)))
    status, headers, _ = raw.patch(path, len(BODY), b"0123456789")
    assert (status, headers["upload-offset"]) == (204, str(len(BODY) + 10))

    download = requests.get(f"{gevent_server.url}{path}", timeout=30)
    assert sha(download.content) == sha(BODY + b"0123456789")
    # Nearly all of it went through the kernel (the first bytes may arrive with the head).
    assert spliced(gevent_server) - before >= len(BODY) - MiB


def test_a_checksummed_patch_is_verified_and_never_spliced(gevent_server: LiveServer) -> None:
    url = create_upload(gevent_server, len(BODY))
    before = spliced(gevent_server)
    tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    wrong = hashlib.sha1(b"something else").digest()
    refused = requests.patch(
        url,
        data=BODY,
        headers={
            **tus,
            "Upload-Offset": "0",
            "Upload-Checksum": "sha1 " + base64.b64encode(wrong).decode(),
        },
        timeout=60,
    )
    assert refused.status_code == 460
    assert requests.head(url, headers=tus, timeout=10).headers["Upload-Offset"] == "0"

    right = base64.b64encode(hashlib.sha1(BODY).digest()).decode()
    accepted = requests.patch(
        url,
        data=BODY,
        headers={**tus, "Upload-Offset": "0", "Upload-Checksum": f"sha1 {right}"},
        timeout=60,
    )
    assert accepted.status_code == 204
    assert sha(requests.get(url, timeout=30).content) == sha(BODY)
    assert spliced(gevent_server) == before  # the checksum needed the bytes in Python


def test_a_spliced_body_cut_short_keeps_what_arrived_and_resumes(
    gevent_server: LiveServer,
) -> None:
    url = create_upload(gevent_server, len(BODY))
    sent = 3 * MiB + 17
    sock = open_patch(url, 0, len(BODY), BODY[:sent])
    sock.close()  # a FIN after the bytes: the server gets every byte sent, then the end

    offset = wait_for_offset(url, sent)
    assert offset == sent
    response = patch(url, offset, BODY[offset:])
    assert response.status_code == 204
    assert sha(requests.get(url, timeout=30).content) == sha(BODY)


def test_a_body_that_trickles_then_speeds_up_is_stored_exactly(gevent_server: LiveServer) -> None:
    """A slow start goes the copy path, the fast rest through the pipes: one exact file."""
    url = create_upload(gevent_server, len(BODY))
    sock = open_patch(url, 0, len(BODY), BODY[:1000])
    sent = 1000
    for _ in range(5):
        time.sleep(0.2)
        sock.sendall(BODY[sent : sent + 4096])
        sent += 4096
    sock.sendall(BODY[sent:])
    sock.settimeout(30)
    assert sock.recv(4096).startswith(b"HTTP/1.1 204 ")
    sock.close()
    assert sha(requests.get(url, timeout=30).content) == sha(BODY)


@pytest.mark.parametrize(
    ("env", "splices"),
    [
        ({"TUSSERVER_WORKER_CLASS": "gthread"}, True),
        ({"TUSSERVER_SPLICE": "false"}, False),
    ],
    ids=["gthread-worker", "splice-off"],
)
def test_other_set_ups_store_the_body_exactly(
    tmp_path: Path, redis_url: str, env: dict[str, str], splices: bool
) -> None:
    with live_server(tmp_path / "data", redis_url, env=env) as server:
        url = create_upload(server, len(BODY))
        response = patch(url, 0, BODY)
        assert response.status_code == 204
        assert sha(requests.get(url, timeout=30).content) == sha(BODY)
        assert (spliced(server) > 0) is splices
