"""The request log line: written when the response has finished, with what was actually sent."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support.tus import TUS, create, patch, upload_id


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tusserver.request"]


def test_a_download_is_logged_once_its_body_has_gone_out(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = create(client, 5)
    patch(client, path, 0, b"hello")
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        response = client.get(path)
        assert not _lines(caplog)  # the body has not been sent yet
        assert response.data == b"hello"
    [line] = _lines(caplog)
    assert line.startswith(f"GET {path} 200 upload={upload_id(path)} in=0 out=5 ")
    assert "cut-short" not in line


def test_a_download_closed_before_its_end_is_logged_as_cut_short(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = create(client, 5)
    patch(client, path, 0, b"hello")
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        response = client.get(path)
        response.close()  # the client went away before reading anything
    [line] = _lines(caplog)
    assert " out=0 " in line
    assert line.endswith("cut-short=client of=5")


def test_an_error_is_logged_at_once_with_its_size(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        response = client.patch("/files/" + "0" * 32, headers={**TUS, "Upload-Offset": "0"})
        [line] = _lines(caplog)
    assert line.startswith(f"PATCH /files/{'0' * 32} 415 ")
    assert f" out={len(response.data)} " in line


def test_control_characters_in_the_path_are_escaped(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tusserver.request"):
        client.get("/files/abc\x1b[31mred\r\nforged 200")
    [line] = _lines(caplog)
    assert "\x1b" not in line and "\r" not in line and "\n" not in line
    assert "\\x1b" in line
