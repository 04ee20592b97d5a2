"""backend_status: one line when a backend goes away, one when it is back, every failure counted."""

from __future__ import annotations

import logging
import uuid

import pytest

from tusserver import backend_status, metrics


def _failures(backend: str) -> float:
    return metrics.BACKEND_FAILURES.labels(backend)._value.get()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tusserver.backends"]


def test_an_outage_is_two_lines_however_many_calls_fail(caplog: pytest.LogCaptureFixture) -> None:
    backend = f"test-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger="tusserver.backends"):
        backend_status.ok(backend)  # up: nothing to say
        for _ in range(500):
            backend_status.failed(backend, ConnectionError("Connection refused"))
        assert backend_status.is_down(backend)
        backend_status.ok(backend)
        backend_status.ok(backend)
    lines = _lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{backend} unavailable: ConnectionError: Connection refused")
    assert lines[1].startswith(f"{backend} available again after")
    assert "(500 failed calls)" in lines[1]
    assert _failures(backend) == 500
    assert not backend_status.is_down(backend)


def test_a_new_outage_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    backend = f"test-{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger="tusserver.backends"):
        backend_status.failed(backend, "first")
        backend_status.ok(backend)
        backend_status.failed(backend, "second\r\nforged line")
    lines = _lines(caplog)
    assert len(lines) == 3
    assert "second\\x0d\\x0aforged line" in lines[2]  # a reason never breaks the line


def test_an_unreachable_hook_receiver_is_one_line_not_one_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tusserver.embedded_redis import free_port
    from tusserver.hooks import HookDispatcher, HttpTransport
    from tusserver.models import UploadInfo

    backend_status.ok(backend_status.HOOKS)  # start from "up", whatever ran before
    nobody = HttpTransport(f"http://127.0.0.1:{free_port()}/hooks", timeout=1, retries=0)
    dispatcher = HookDispatcher(nobody, ["post-receive"])
    before = _failures(backend_status.HOOKS)
    with caplog.at_level(logging.INFO):
        for number in range(20):
            dispatcher.after("post-receive", UploadInfo(id=f"{number:032x}", length=10))
        assert dispatcher.flush(timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert lines[0].startswith("hooks unavailable: the post-receive hook unreachable")
    assert _failures(backend_status.HOOKS) - before == 20
    backend_status.ok(backend_status.HOOKS)
