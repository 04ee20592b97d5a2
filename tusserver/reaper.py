"""The periodic expiry reaper that every worker runs, one at a time across all servers."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from . import backend_status, metrics
from .errors import BackendUnavailable
from .state.connect import REDIS_ERRORS

log = logging.getLogger(__name__)


def start_reaper(app: Any) -> threading.Thread:
    """Every `cleanup_interval` seconds, the worker holding the reaper lease removes expired
    uploads, then sweeps bytes that no live upload owns (orphans)."""
    components = app.extensions["tusserver"]
    settings = components.settings

    def run() -> None:
        stop = threading.Event()
        while not stop.wait(settings.cleanup_interval):
            try:
                if components.state.lease("reaper", str(os.getpid()), settings.cleanup_interval):
                    removed = components.service.cleanup()
                    metrics.UPLOADS_EXPIRED.inc(len(removed))
                    if removed:
                        log.info("reaper removed %d expired upload(s)", len(removed))
                    components.service.sweep_orphans()
            except BackendUnavailable:
                pass  # counted and logged once per outage where it happened (backend_status)
            except REDIS_ERRORS as exc:
                backend_status.failed(backend_status.REDIS, exc)
            except Exception:  # the reaper must outlive anything
                log.exception("expiry reaper run failed")

    thread = threading.Thread(target=run, name="expiry-reaper", daemon=True)
    thread.start()
    return thread
