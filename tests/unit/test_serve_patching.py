"""`tusserver serve` monkey-patches the standard library for the gevent worker before the modules
it patches are imported.

A module imported before the patching keeps unpatched references (gevent warns about `ssl`:
"may lead to errors, including RecursionError"), and redis-py keeps the standard library's
queue for its pool. What `serve` imports before it patches must therefore not pull in `ssl` or
redis. What a user would notice if this broke: that warning at every start, and TLS
connections (S3, Redis over TLS) that can fail under the gevent worker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
import tusserver.cli
early = sorted(name for name in ("ssl", "redis", "urllib3", "minio") if name in sys.modules)
print(",".join(early) or "none")
"""


def test_the_cli_imports_nothing_the_gevent_worker_must_patch_first() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none", f"imported before the patching: {done.stdout.strip()}"
