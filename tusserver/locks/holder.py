"""Lock tokens that say who holds a lock, so a waiter can tell a dead holder from a busy one.

A token is `<host>|<pid>|<start>|<random>`: the host (hostname and PID namespace), the holding
process's id and its start time (clock ticks since boot, from /proc), and 64 random bits that
make it unique. A waiter on the same host whose holder process is gone, or whose pid now
belongs to a process that started at another time (pid reuse), knows the holder died (kill -9,
OOM) and may break the lock at once instead of waiting for its TTL. Holders on other hosts are
never judged: their locks end by TTL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket

SEPARATOR = "|"


@functools.cache
def _host() -> str:
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    return f"{socket.gethostname()}/{namespace}".replace(SEPARATOR, "_")


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/<pid>/stat), None if it is gone.

    A zombie (killed, not yet reaped by its parent) counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = raw.rpartition(")")[2].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


@functools.cache
def _me(pid: int) -> str:
    return SEPARATOR.join((_host(), str(pid), process_start(pid) or "?"))


def new_token() -> str:
    """A fresh lock token naming this process (recomputed after a fork: pid is the cache key)."""
    return f"{_me(os.getpid())}{SEPARATOR}{secrets.token_hex(8)}"


def holder_is_dead(token: str) -> bool:
    """True only when `token`'s holder certainly no longer runs (same host, process gone)."""
    fields = token.split(SEPARATOR)
    if len(fields) != 4 or fields[0] != _host() or not fields[1].isdigit():
        return False
    started = process_start(int(fields[1]))
    if started is None:
        return os.path.isdir("/proc/self")  # no /proc at all: cannot judge
    return fields[2] != "?" and started != fields[2]
