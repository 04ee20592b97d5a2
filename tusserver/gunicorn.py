"""Runs the app under gunicorn with settings that suit long uploads.

gthread workers: each connection gets a thread, and the worker's heartbeat comes from its main
thread, so an upload that lasts hours is never killed by the worker timeout. Each worker builds
its own app after the fork (no preload), starts the expiry reaper, and on SIGTERM interrupts its
running uploads so they commit what they received before the worker exits.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from gunicorn.app.base import BaseApplication

from .settings import Settings

log = logging.getLogger(__name__)


class TusApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn's programmatic entry point, configured from our settings and CLI flags."""

    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from .app import create_app

        app = create_app(self.settings)
        from .reaper import start_reaper

        start_reaper(app)
        return app


def _post_worker_init(worker: Any) -> None:
    """On SIGTERM, running uploads commit what they have before gunicorn's graceful wait."""
    original = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        app = worker.wsgi
        flask_app = getattr(app, "extensions", None)
        if flask_app is not None:
            flask_app["tusserver"].keeper.shutdown()
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def _child_exit(server: Any, worker: Any) -> None:
    from .metrics import worker_exited

    worker_exited(worker.pid)


def run_gunicorn(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": settings.shutdown_timeout,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "post_worker_init": _post_worker_init,
        "child_exit": _child_exit,
        "limit_request_field_size": 16384,
        "proc_name": "tusserver",
    }
    TusApplication(settings, options).run()
