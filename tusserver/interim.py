"""Interim (1xx) responses written straight onto the client connection.

WSGI has no way to send an interim response: the application gets one `start_response` and that
is the final status. The IETF resumable-upload draft asks the server to announce a new upload with
`104 Upload Resumption Supported` (and its `Location`) before the creation body is read, so a
client cut off mid-body can resume. Under gunicorn the application can reach the connection
(`environ["gunicorn.socket"]`, already used to read bodies in `wsgi_input`), and nothing has been
written on it yet when a view runs, so the interim response goes out first and gunicorn's final
response follows it, as HTTP/1.1 allows.

Only HTTP/1.1 clients get one (HTTP/1.0 has no 1xx responses), and only where that socket exists:
other WSGI servers and Flask's test client get the final response alone, which the draft allows
("unless the server is not capable of sending interim responses"); clients then learn the
upload's URL from the final response's `Location`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .protocol_ietf import format_interim

log = logging.getLogger(__name__)


def can_send_interim(environ: Mapping[str, Any]) -> bool:
    """True where an interim response can reach the client."""
    return (
        environ.get("gunicorn.socket") is not None and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
    )


def send_interim(environ: Mapping[str, Any], status: str, headers: Mapping[str, str]) -> bool:
    """Write one interim response; False if it cannot be sent (the request goes on regardless)."""
    if not can_send_interim(environ):
        return False
    try:
        environ["gunicorn.socket"].sendall(format_interim(status, headers))
    except OSError as exc:  # the client went away: the body read will notice and end cleanly
        log.info("interim response not sent: %s", exc)
        return False
    return True
