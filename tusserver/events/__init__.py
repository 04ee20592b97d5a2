"""Live updates: file events published to Redis streams and served as Server-Sent Events.

- `payload.py`: what an event says (JSON, never a secret);
- `publisher.py`: queueing and sending events (one background sender per process, progress
  throttled), `XADD` to the owner's and the fleet-wide stream plus one `PUBLISH`;
- `hub.py`: one subscription per process, fanned out to the process's open streams;
- `history.py`: resuming after `Last-Event-ID` from the bounded streams;
- the endpoint is `views/events.py` (`GET /api/events`).

docs/architecture.md, "Live updates", tells the whole story.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..models import UploadInfo
from ..settings import Settings
from ..state.connect import Client
from ..state.keys import Keys
from .hub import EventHub
from .payload import EventKind
from .publisher import EventPublisher


class NoEvents:
    """What the service holds when live updates are off (and in code that builds no app)."""

    def publish(self, kind: EventKind, info: UploadInfo, **extra: Any) -> None:
        pass

    def progress(self, info: UploadInfo) -> None:
        pass


@dataclass
class FileEvents:
    """The process's publisher and hub, made once per app."""

    publisher: EventPublisher
    hub: EventHub

    @classmethod
    def from_settings(
        cls, settings: Settings, client: Client, clock: Callable[[], float] = time.time
    ) -> FileEvents:
        """The app's events. `clock` dates the events: wall-clock time by default, not the
        app's clock, whose readings some tests count."""
        keys = Keys(settings.redis_prefix)
        publisher = EventPublisher(
            client,
            keys,
            retain=settings.events_retain,
            retain_all=settings.events_retain_all,
            progress_interval=settings.events_progress_interval,
            clock=clock,
        )
        return cls(publisher, EventHub(client, keys, settings.events_max_streams))

    def publish(self, kind: EventKind, info: UploadInfo, **extra: Any) -> None:
        self.publisher.publish(kind, info, **extra)

    def progress(self, info: UploadInfo) -> None:
        self.publisher.progress(info)

    def stop(self) -> None:
        """End the streams, the subscription and the sender (tests; the process's end)."""
        self.hub.shutdown()
        self.publisher.stop()


__all__ = ["EventHub", "EventPublisher", "FileEvents", "NoEvents"]
