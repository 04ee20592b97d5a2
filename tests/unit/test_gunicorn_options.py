"""What `tusserver serve` asks of gunicorn."""

from __future__ import annotations

from pathlib import Path

import pytest
from gunicorn.config import Config

from tusserver.gunicorn import gunicorn_options
from tusserver.settings import Settings


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_no_shared_control_socket_is_opened(tmp_path: Path, worker_class: str) -> None:
    """gunicorn 27 opens one control socket per user by default; two servers would share it."""
    options = gunicorn_options(Settings(data_dir=tmp_path), "127.0.0.1", 8080, 2, 8, worker_class)
    config = Config()
    for key, value in options.items():
        config.set(key, value)
    assert config.control_socket_disable is True
