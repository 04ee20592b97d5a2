"""A client that vanishes mid-PATCH, and one that comes back while its old PATCH still hangs."""

from __future__ import annotations

import hashlib
import os
import time

import requests

from tests.support.live import LiveServer
from tests.support.tus_http import create_upload, offset_of, open_patch, patch, wait_for_offset


def test_half_a_patch_then_disconnect_keeps_what_arrived(server: LiveServer) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    url = create_upload(server, len(data))
    half = len(data) // 2
    sock = open_patch(url, 0, len(data), data[:half])
    time.sleep(0.3)  # let the server read what was sent before the connection drops
    sock.close()

    assert wait_for_offset(url, half) == half

    response = patch(url, half, data[half:])
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == str(len(data))
    download = requests.get(url, timeout=30)
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_resuming_client_gets_in_while_old_patch_hangs(server: LiveServer) -> None:
    data = os.urandom(2 * 1024 * 1024)
    url = create_upload(server, len(data))
    first = 700_000
    hung = open_patch(url, 0, len(data), data[:first])  # stays open, sends nothing more
    time.sleep(0.5)

    # The client "reconnects": HEAD, then PATCH from the offset it was told. A newcomer waits
    # for the lock at most TUSSERVER_LOCK_WAIT (5 s) and then gets a 423, while the hung
    # request's read timeout is 60 s: a 204 here means the server ended the old request on
    # the newcomer's behalf, not that a timeout freed the lock.
    offset = offset_of(url)
    response = patch(url, offset, data[offset:])
    if response.status_code == 409:  # the hung request committed its bytes meanwhile
        offset = int(response.headers["Upload-Offset"])
        response = patch(url, offset, data[offset:])

    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(len(data))
    # The old request was ended by the server, which committed what it had read and said so.
    hung.settimeout(10)
    reply = hung.makefile("rb")
    status = reply.readline()
    headers = {}
    while (line := reply.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert status.startswith(b"HTTP/1.1 204 "), status
    assert 0 < int(headers["upload-offset"]) <= first
    assert reply.read() == b"", "the connection of a cut-short body must be closed"
    hung.close()

    download = requests.get(url, timeout=30)
    assert len(download.content) == len(data)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()
