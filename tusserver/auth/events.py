"""Security events: one structured JSON line per event, carrying the request id.

Who logged in or failed to, which token was created or revoked, whose role or quota changed,
which admin deleted someone else's upload, who made a download link. An operator greps these
(`"event":"login-failed"`) or ships them to a SIEM; the request id ties each one to the request
log line of the same request.

A field that could hold a credential never reaches the log: fields with a secret-sounding name
are refused outright (a bug in a caller must not become a leak), and values go through
`json.dumps`, which escapes control characters, so a user name with a newline cannot forge a
second line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger("tusserver.security")

FORBIDDEN_FIELDS = frozenset(
    {"password", "token", "cookie", "signature", "secret", "authorization", "grant", "session"}
)
"""Field names that may never be logged: the event names the credential's id, never its value."""


class SecretFieldError(ValueError):
    """A caller tried to log a field that would hold a credential."""


def log_security_event(kind: str, **fields: Any) -> None:
    """Log one security event as a JSON line: `{"event": kind, "request_id": ..., ...}`."""
    refused = sorted(name for name in fields if name.lower() in FORBIDDEN_FIELDS)
    if refused:
        raise SecretFieldError(f"security events never carry {', '.join(refused)}")
    # Imported here so the service may log an event without importing Flask at module level.
    from flask import g, has_request_context, request

    record: dict[str, Any] = {"event": kind, "time": round(time.time(), 3)}
    if has_request_context():
        record["request_id"] = g.get("request_id", "-")
        record["client"] = request.remote_addr or "-"
        principal = g.get("principal")
        if principal is not None and "actor" not in fields:
            record["actor"] = principal.name
    record.update(fields)
    log.info("%s", json.dumps(record, default=str, sort_keys=False))
