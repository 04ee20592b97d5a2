"""The Server-Sent Events wire format (the WHATWG HTML standard, "Server-sent events").

An event is `id:`, `event:` and `data:` lines and a blank line; a line starting with `:` is a
comment (the heartbeat). The event JSON is one line (it is made by `json.dumps` without
indentation, which escapes control characters), so it fits in a single `data:` line.
"""

from __future__ import annotations

import json

RETRY_MS = 3000
"""How long a browser's EventSource waits before it reconnects after a dropped stream."""


def event_frame(entry_id: str, body: str) -> bytes:
    """One event; its `event:` name is the payload's `type` (`created`, `progress`, ...)."""
    try:
        kind = json.loads(body).get("type", "message")
    except (ValueError, AttributeError):
        kind = "message"
    return f"id: {entry_id}\nevent: {kind}\ndata: {body}\n\n".encode()


def reset_frame(reason: str) -> bytes:
    """Tells the client that events may have been missed: reload the list (no `id:`, so the
    client's last id is kept)."""
    body = json.dumps({"type": "reset", "reason": reason}, separators=(",", ":"))
    return f"event: reset\ndata: {body}\n\n".encode()


def opening() -> bytes:
    """The first bytes: the reconnection delay and a comment, so headers go out at once."""
    return f"retry: {RETRY_MS}\n: stream open\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"
