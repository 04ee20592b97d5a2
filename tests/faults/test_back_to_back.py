"""Many PATCHes back to back on one keep-alive connection: a commit releases the lock, and the
lock keeper must never mistake that for a lost lock and cut the connection the next PATCH uses.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests

from tests.support.live import live_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}


def test_back_to_back_patches_on_one_connection(tmp_path: Path, redis_url: str) -> None:
    step = 256 * 1024
    data = os.urandom(160 * step)
    with live_server(tmp_path / "data", redis_url, workers=1) as server, requests.Session() as s:
        created = s.post(
            f"{server.url}/files/", headers={**TUS, "Upload-Length": str(len(data))}, timeout=10
        )
        url = created.headers["Location"]
        for offset in range(0, len(data), step):
            response = s.patch(
                url,
                data=data[offset : offset + step],
                headers={**OCTET, "Upload-Offset": str(offset)},
                timeout=30,
            )
            assert response.status_code == 204, (offset, response.status_code, response.text)
            assert response.headers["Upload-Offset"] == str(offset + step)
        body = s.get(url, timeout=30).content
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert "lock lost" not in server.log()
