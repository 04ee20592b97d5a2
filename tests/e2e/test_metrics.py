"""/metrics counts the traffic of every gunicorn worker (prometheus multiprocess mode)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.support.live import live_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample; a metric that is not exposed fails (it never reads as 0)."""
    pattern = rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+-]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"{name}{labels} is not in /metrics"
    return float(found.group(1))


def test_metrics_count_real_traffic_across_workers(tmp_path: Path, redis_url: str) -> None:
    with live_server(tmp_path / "data", redis_url, workers=2, threads=4) as server:
        session = requests.Session()
        urls = []
        for _ in range(3):
            created = session.post(
                f"{server.url}/files/", headers={**TUS, "Upload-Length": "1000"}, timeout=10
            )
            urls.append(created.headers["Location"])
        for url in urls[:2]:
            sent = requests.patch(
                url, data=b"x" * 1000, headers={**OCTET, "Upload-Offset": "0"}, timeout=10
            )
            assert sent.status_code == 204
        assert requests.get(urls[0], timeout=10).content == b"x" * 1000
        requests.patch(urls[2], data=b"y", headers={**OCTET, "Upload-Offset": "5"}, timeout=10)
        assert requests.delete(urls[2], headers=TUS, timeout=10).status_code == 204

        text = requests.get(f"{server.url}/metrics", timeout=10).text
        assert requests.get(f"{server.url}/metrics", timeout=10).text.count("tusserver_") > 10

    assert sample(text, "tusserver_uploads_created_total") == 3
    assert sample(text, "tusserver_uploads_finished_total") == 2
    assert sample(text, "tusserver_uploads_terminated_total") == 1
    assert sample(text, "tusserver_bytes_received_total") == 2000
    assert sample(text, "tusserver_bytes_served_total") == 1000
    assert sample(text, "tusserver_requests_total", '{method="POST",status="201"}') == 3
    assert sample(text, "tusserver_requests_total", '{method="PATCH",status="204"}') == 2
    assert sample(text, "tusserver_requests_total", '{method="PATCH",status="409"}') == 1
    assert sample(text, "tusserver_uploads_active") == 0
    assert sample(text, "tusserver_storage_operation_seconds_count", '{operation="write"}') == 2
