"""Web origins (`scheme://host[:port]`) as the CORS allow-list takes them: exact, or `*`.

A browser's `Origin` header is compared with each allowed origin as a whole string. Patterns are
refused at start-up: flask-cors treats any value with a regex character as an unanchored regular
expression, so `https://*.example.com` would let `https://xexample.com.evil.net` in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

WILDCARD = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")


def origin_problem(value: str) -> str | None:
    """Why `value` is not an exact origin or `*` (None when it is one)."""
    if value == WILDCARD:
        return None
    if "*" in value:
        return "wildcards are not allowed: list each origin, or use * alone"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"not an origin ({exc})"
    if parts.scheme not in _DEFAULT_PORTS:
        return "an origin starts with http:// or https://"
    if parts.username is not None or parts.password is not None:
        return "an origin has no user name or password"
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        return "an origin has no path, not even a trailing /"
    host = parts.hostname or ""
    if not _HOST.fullmatch(host):
        return "an origin needs a host name or address"
    if port == _DEFAULT_PORTS[parts.scheme]:
        return f"browsers send this origin without the default port {port}"
    netloc = f"[{host}]" if ":" in host else host  # urlsplit drops an IPv6 address's brackets
    canonical = f"{parts.scheme}://{netloc}" + (f":{port}" if port is not None else "")
    if value != canonical:
        return f"write it as browsers send it: {canonical}"
    return None


def cors_allow_list(origins: Iterable[str]) -> str | list[str | re.Pattern[str]]:
    """What flask-cors is given: `*`, or the exact origins.

    Plain strings are compared whole (case-insensitively) by flask-cors. An IPv6 origin holds
    `[`, which flask-cors would read as a regex character class, so it goes in as a compiled
    pattern of its escaped text, anchored at both ends: still an exact comparison.
    """
    allowed = list(origins)
    if WILDCARD in allowed:
        return WILDCARD
    return [
        re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) if "[" in origin else origin
        for origin in allowed
    ]
