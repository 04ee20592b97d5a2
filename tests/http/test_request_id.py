"""X-Request-ID: accepted from the client (or generated), echoed, and logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support.tus import TUS, create


def test_request_id_is_echoed_and_logged(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    path = create(client, 3)
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        response = client.head(path, headers={**TUS, "X-Request-ID": "trace-42"})
    assert response.headers["X-Request-ID"] == "trace-42"
    line = next(r.getMessage() for r in caplog.records if r.name == "tusserver.request")
    assert "id=trace-42" in line
    assert line.startswith(f"HEAD {path} 200 upload={path.rsplit('/', 1)[-1]}")


def test_request_id_is_generated_and_sanitised(client: Any) -> None:
    generated = client.options("/files/")
    assert len(generated.headers["X-Request-ID"]) == 32
    hostile = client.options("/files/", headers={"X-Request-ID": "a\x01b" + "c" * 500})
    assert hostile.headers["X-Request-ID"] == "ab" + "c" * 126


def test_a_line_break_in_the_path_cannot_forge_a_log_line(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "/files/abc%0a127.0.0.1 GET /files/x 200 upload=x in=0 out=0 0.1ms id=forged"
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        response = client.head(forged, headers={**TUS, "X-Request-ID": "real"})
    assert response.status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "tusserver.request"]
    assert len(lines) == 1
    assert lines[0].splitlines() == [lines[0]]
    assert lines[0].startswith("HEAD /files/abc\\x0a127.0.0.1")
    assert lines[0].endswith("id=real")
