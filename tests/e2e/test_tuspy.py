"""Interoperability with tuspy, the Python tus client."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import requests
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from tests.support.live import LiveServer

MiB = 1024 * 1024


def test_tuspy_uploads_interrupts_and_resumes_with_checksums(
    server: LiveServer, tmp_path: Path
) -> None:
    source = tmp_path / "twenty.bin"
    source.write_bytes(os.urandom(20 * MiB))
    storage = FileStorage(str(tmp_path / "urls.json"))
    client = tus_client.TusClient(f"{server.url}/files/")

    first = client.uploader(
        str(source),
        chunk_size=MiB,
        metadata={"filename": "twenty.bin"},
        store_url=True,
        url_storage=storage,
        upload_checksum=True,
    )
    first.upload(stop_at=7 * MiB)  # the "interruption": the process stops here
    url = first.url
    head = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert int(head.headers["Upload-Offset"]) == 7 * MiB

    resumed = client.uploader(
        str(source), chunk_size=MiB, store_url=True, url_storage=storage, upload_checksum=True
    )
    assert resumed.url == url, "tuspy did not find the stored URL"
    assert resumed.offset == 7 * MiB, "tuspy did not resume from the server's offset"
    resumed.upload()

    download = requests.get(url, timeout=60)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert "twenty.bin" in download.headers["Content-Disposition"]
