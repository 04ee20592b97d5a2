"""Process limits for a server that holds thousands of connections."""

from __future__ import annotations

import contextlib
import resource


def raise_open_file_limit() -> int:
    """Every connection is a file descriptor: raise the soft limit to the hard one.

    The soft limit is often 1024 while the hard limit allows far more; gunicorn's workers and
    the embedded Redis are started afterwards and inherit the raised limit. Returns the limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
