"""Start-up checks of `tusserver serve` about access: the open-mode warning."""

from __future__ import annotations

import logging

import pytest

from tusserver.cli import _check_access_mode
from tusserver.settings import Settings


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_open_mode_on_a_public_address_warns_loudly(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        _check_access_mode(Settings(auth="none"), host, "http://127.0.0.1:8080")
    assert "ANYONE WHO CAN REACH THIS ADDRESS" in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_open_mode_on_loopback_is_quiet(host: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _check_access_mode(Settings(auth="none"), host, "http://127.0.0.1:8080")
    assert caplog.text == ""
