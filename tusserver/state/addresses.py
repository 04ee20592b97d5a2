"""Redis deployment modes and sentinel addresses: what the settings check, without redis.

Kept apart from `connect.py` so that reading the settings does not import redis (and with it
`ssl`): `tusserver serve` reads them before it monkey-patches the standard library for the
gevent worker, and a module imported before the patching keeps unpatched references.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["MODES", "parse_sentinels"]

MODES = ("single", "cluster", "sentinel")


def parse_sentinels(entries: Sequence[str]) -> list[tuple[str, int]]:
    """`host:port` strings (`[::1]:26379` for IPv6) as (host, port); ValueError names a bad one."""
    addresses = []
    for entry in entries:
        parts = urlsplit(f"//{entry.strip()}")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"{entry!r} is not host:port")
        addresses.append((parts.hostname, port))
    return addresses
