"""Upload bodies for large transfers: real random bytes, generated once, streamed without copies.

One buffer of PERIOD random bytes (16 MiB + 4099, an odd period, so a dropped, duplicated or
misplaced piece changes the stored file's sha256) is made once per process and then read as
an endless pattern: `pieces(start, count)` are `memoryview` slices of it, at most MAX_PIECE
each, and `expected_sha256(size)` is the digest of the first `size` bytes. The memory tests and
the benchmark's client (which makes it before forking its client processes, so they share the
pages) both use it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

MiB = 1024 * 1024
PERIOD = 16 * MiB + 4099
MAX_PIECE = 8 * MiB

_pattern: bytes | None = None
_expected: dict[int, str] = {}


def pattern() -> bytes:
    """PERIOD random bytes followed by the first MAX_PIECE of them again (made once)."""
    global _pattern
    if _pattern is None:
        core = os.urandom(PERIOD)
        _pattern = core + core[:MAX_PIECE]
    return _pattern


def pieces(start: int, count: int) -> Iterator[memoryview]:
    """Bytes `[start, start + count)` of the endless pattern, as views of at most MAX_PIECE."""
    view = memoryview(pattern())
    position = start
    end = start + count
    while position < end:
        size = min(MAX_PIECE, end - position)
        base = position % PERIOD
        yield view[base : base + size]
        position += size


def expected_sha256(size: int) -> str:
    """The sha256 of the first `size` bytes of the pattern (cached)."""
    if size not in _expected:
        digest = hashlib.sha256()
        for piece in pieces(0, size):
            digest.update(piece)
        _expected[size] = digest.hexdigest()
    return _expected[size]
