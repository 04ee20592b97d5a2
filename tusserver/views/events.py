"""`GET /api/events`: the caller's file events as a Server-Sent Events stream.

Who sees what: a user (session cookie or API token with the `read` scope) gets the events of
their own uploads; an admin with full rights gets everyone's (the fleet-wide stream). Upload
grants and signed links are for one upload's bytes and get 403, like a token without `read`.

Resuming: the SSE `id:` of each event is its Redis stream entry id. A client that reconnects with
`Last-Event-ID` (EventSource sends it by itself; `?last_event_id=` does the same for clients that
cannot set headers) gets the retained events after it, then live ones. An id that cannot be
honoured starts from the oldest retained event after a `reset` event (`events/history.py`).
Without either, the stream starts with what happens next.

The stream is long-lived by design: heartbeat comments every `TUSSERVER_EVENTS_HEARTBEAT`
seconds keep proxies from timing it out (and find clients that left), `X-Accel-Buffering: no`
stops nginx from buffering it, and `Cache-Control: no-cache` keeps caches out. A GET has no
body, so the minimum body rate and the keep-alive drain never touch it; the request log writes
its line when the stream ends. It is not counted against the per-client connection cap (see
`worker.py` and `client_limits.py`); the per-process cap on streams bounds them instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, request

from ..auth.principal import Principal
from ..errors import Forbidden, UploadNotFound
from ..events import FileEvents
from ..events.history import Resume, StreamId, parse_id, plan_resume, read_after
from ..events.hub import CLOSED, RESYNC, EventHub, Listener
from ..events.publisher import ALL, owner_scope
from ..events.sse import HEARTBEAT, event_frame, opening, reset_frame
from ..state.connect import REDIS_ERRORS
from ..state.keys import Keys
from ..state.redis import translate_errors
from .common import principal

log = logging.getLogger(__name__)

bp = Blueprint("events", __name__, url_prefix="/api")

SUBSCRIBE_WAIT = 3.0
"""Seconds the first stream of a process waits for the subscription (a Redis round trip or two)."""


@bp.get("/events")
def event_stream() -> Response:
    components = current_app.extensions["tusserver"]
    events: FileEvents | None = components.events
    if events is None:
        raise UploadNotFound("live updates are turned off on this server")
    caller = principal()
    scope, key = _stream_of(caller, events.hub.keys)
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    with translate_errors():  # Redis down before the first byte: a plain 503
        resume = plan_resume(components.redis, key, last_event_id)
    listener = events.hub.open(scope)  # 503 when this process holds all it may
    events.hub.wait_subscribed(SUBSCRIBE_WAIT)
    frames = _stream(events.hub, listener, components.redis, key, resume, events_heartbeat())
    response = Response(
        _Body(frames, lambda: events.hub.close(listener)), mimetype="text/event-stream"
    )
    response.headers["Cache-Control"] = "no-cache, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


class _Body:
    """The response body: the frames, and a `close` that always lets go of the listener, even
    when the server closes the body before it ever started (a generator's `finally` would not
    run then)."""

    def __init__(self, frames: Iterator[bytes], release: Callable[[], None]):
        self.frames = frames
        self.release = release

    def __iter__(self) -> Iterator[bytes]:
        return self.frames

    def close(self) -> None:
        try:
            close = getattr(self.frames, "close", None)
            if close is not None:
                close()
        finally:
            self.release()


def events_heartbeat() -> float:
    return current_app.extensions["tusserver"].settings.events_heartbeat


def _stream_of(caller: Principal, keys: Keys) -> tuple[str, str]:
    """(pub/sub scope, stream key) the caller may follow; 403 if none."""
    if caller.grant is not None or caller.link_upload is not None or not caller.allows("read"):
        raise Forbidden("this credential may not read file events (it needs the read scope)")
    if caller.is_admin and caller.allows("admin"):
        return ALL, keys.all_events
    if caller.name is None:
        raise Forbidden("file events need a signed-in user")
    return owner_scope(caller.name), keys.owner_events(caller.name)


def _stream(
    hub: EventHub,
    listener: Listener,
    client: Any,
    key: str,
    resume: Resume,
    heartbeat: float,
) -> Iterator[bytes]:
    """The response body: retained events after the client's id, then live ones.

    The listener is registered before the backlog is read, so nothing published meanwhile is
    lost; ids at or before the last one sent are skipped, so nothing is sent twice.
    """
    cursor = _Cursor(resume.after)
    try:
        yield opening()
        if resume.reset:
            yield reset_frame("the last event id is unknown or too old; starting over")
        if resume.replay:
            yield from _backlog(client, key, cursor)
        while True:
            message = listener.next(timeout=heartbeat)
            if message is None:
                yield HEARTBEAT
            elif message is CLOSED:
                return
            elif message is RESYNC:
                yield from _backlog(client, key, cursor)
            else:
                entry = parse_id(message.entry_id)
                if entry is None or entry <= cursor.last:
                    continue
                cursor.last = entry
                yield event_frame(message.entry_id, message.body)
    except REDIS_ERRORS as exc:
        # Mid-stream the status is long sent: end it; the client resumes with Last-Event-ID.
        log.warning("event stream ended: Redis unavailable (%s)", exc)
    finally:
        hub.close(listener)


@dataclass
class _Cursor:
    """The id of the last event a stream sent (or of where it started)."""

    last: StreamId


def _backlog(client: Any, key: str, cursor: _Cursor) -> Iterator[bytes]:
    """Frames of the retained entries after the cursor, read a page at a time (memory stays
    flat however many are retained); the cursor follows."""
    for entry_id, body in read_after(client, key, cursor.last):
        parsed = parse_id(entry_id)
        if parsed is None:
            continue
        cursor.last = parsed
        yield event_frame(entry_id, body)
