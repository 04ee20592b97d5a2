"""Start writing a file range to the disk without waiting for it (Linux `sync_file_range`).

Python's `os` has no `sync_file_range`, so it is called from the C library through ctypes.
Where it does not exist (not Linux, or no C library found) `start_writeback` does nothing: it
only moves disk work earlier, and the `fdatasync` that follows is what makes the bytes durable.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
"""Start writeback of the dirty pages in the range; do not wait for it."""


def _load() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
        call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        call.restype = ctypes.c_int
        return call  # type: ignore[no-any-return]
    return None


_SYNC_FILE_RANGE = _load()


def start_writeback(fd: int, offset: int, count: int) -> None:
    """Ask the kernel to start writing `count` bytes at `offset` of `fd` (best effort)."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, count, SYNC_FILE_RANGE_WRITE)
