"""Runs the app under gunicorn with settings that suit long uploads and many slow clients.

Two worker classes (`TUSSERVER_WORKER_CLASS`, `tusserver serve --worker-class`):
- `gevent` (the default, `tusserver.worker.TusGeventWorker`): a connection is a greenlet, so
  thousands of slow or idle clients per process cost memory, not threads; blocking disk calls
  go to a thread pool. It adds the header timeout and the per-client connection cap.
- `gthread`: gunicorn's threaded worker; each connection in a request takes one of `--threads`
  threads, so `--workers x --threads` slow clients are enough to stall the server. Kept for
  comparison and for environments where monkey-patching is unwanted.

Either way the worker's heartbeat does not depend on a request finishing, so an upload that
lasts hours is never killed by the worker timeout. Each worker builds its own app after the fork
(no preload), starts the expiry reaper, and on SIGTERM interrupts its running uploads so they
commit what they received before the worker exits.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from typing import Any

from gunicorn.app.base import BaseApplication

from . import client_limits
from .settings import Settings

log = logging.getLogger(__name__)

WORKER_CLASSES = {"gevent": "tusserver.worker.TusGeventWorker", "gthread": "gthread"}


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

        settings = self.settings
        threads = self.options.get("threads")
        if threads is not None:
            # gthread: an event stream holds one of the worker's threads for as long as it is
            # open; half of them at most, so streams never leave uploads without a thread.
            cap = min(settings.events_max_streams, max(1, int(threads) // 2))
            settings = settings.replace(events_max_streams=cap)
        app = create_app(settings)
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
            events = flask_app["tusserver"].events
            if events is not None:
                # Open event streams end now rather than hold the graceful wait to its end.
                _outside_the_handler(events.hub.shutdown)
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def _outside_the_handler(function: Any) -> None:
    """Run `function` soon, not inside the signal handler (which may have interrupted a stream
    holding a lock): a greenlet under gevent (whose handlers run in the event loop, where
    nothing may block, not even starting a thread), else a thread."""
    from gevent import monkey

    if monkey.is_module_patched("threading"):
        import gevent

        gevent.spawn(function)
    else:
        threading.Thread(target=function, daemon=True).start()


def _pre_fork(server: Any, worker: Any) -> None:
    """In the master, before forking: the worker's region of the connection table."""
    if client_limits.TABLE is not None:
        worker.tus_region = client_limits.TABLE.assign(worker.age)


def _post_fork(server: Any, worker: Any) -> None:
    """In the new worker: count connections in its own region."""
    if client_limits.TABLE is not None:
        client_limits.TABLE.region = getattr(worker, "tus_region", None)


def _child_exit(server: Any, worker: Any) -> None:
    from .metrics import worker_exited

    worker_exited(worker.pid)
    if client_limits.TABLE is not None:
        client_limits.TABLE.release(worker.age)


def gunicorn_settings() -> set[str]:
    """The names of the settings this gunicorn knows (they differ between releases)."""
    from gunicorn.config import KNOWN_SETTINGS

    return {setting.name for setting in KNOWN_SETTINGS}


def gunicorn_options(
    settings: Settings, host: str, port: int, workers: int, threads: int, worker_class: str
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": WORKER_CLASSES[worker_class],
        "timeout": 60,
        "graceful_timeout": settings.shutdown_timeout,
        "keepalive": max(1, math.ceil(settings.keepalive_timeout)),  # gunicorn wants whole seconds
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "post_worker_init": _post_worker_init,
        "pre_fork": _pre_fork,
        "post_fork": _post_fork,
        "child_exit": _child_exit,
        "limit_request_field_size": 16384,
        "proc_name": "tusserver",
        "backlog": 4096,
    }
    if "control_socket_disable" in gunicorn_settings():
        # gunicorn 27's runtime control socket is one path per user (~/.gunicorn), shared by
        # every server that user starts: two servers would fight over it, and nothing here
        # uses it. Deployments manage the server through signals and the process manager.
        options["control_socket_disable"] = True
    if worker_class == "gevent":
        options["worker_connections"] = settings.worker_connections
    else:
        options["threads"] = threads
        # gthread keeps idle keep-alive connections in its poller, up to this many per worker
        options["worker_connections"] = max(settings.worker_connections, threads + 1)
    return options


def run_gunicorn(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    threads: int,
    worker_class: str | None = None,
) -> None:
    chosen = worker_class or settings.worker_class
    if settings.max_connections_per_client:
        # Made before the fork so every worker shares it; a few spare regions for workers
        # that are started while old ones are still exiting.
        client_limits.TABLE = client_limits.ConnectionTable(workers * 2 + 2)
    options = gunicorn_options(settings, host, port, workers, threads, chosen)
    TusApplication(settings, options).run()
