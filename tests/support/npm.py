"""npm packages for interoperability tests, installed by the tests themselves into .venv/npm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.tools import missing

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests" / "interop"


def require_node() -> tuple[str, str]:
    """Paths of node and npm; a skip outside CI, a failure in CI (CI installs them)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    missing("node and npm (Debian packages `nodejs`, `npm`) for the tus-js-client tests")
    raise AssertionError("unreachable")  # missing() fails or skips


def install_interop_packages() -> Path:
    """Install tests/interop/package.json into .venv/npm (once); returns its node_modules."""
    _, npm = require_node()
    target = ROOT / ".venv" / "npm"
    target.mkdir(parents=True, exist_ok=True)
    wanted = json.loads((INTEROP / "package.json").read_text())
    stamp = target / "package.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        shutil.copy(INTEROP / "package.json", stamp)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            check=True,
            timeout=300,
        )
    return target / "node_modules"


def tus_js_upload(
    endpoint: str, source: Path, parallel: int, chunk_size: int, **env: str
) -> subprocess.CompletedProcess[str]:
    """Upload `source` with tus-js-client (tests/interop/tus_js_upload.mjs) to `endpoint`, in
    `parallel` parallel uploads of `chunk_size` chunks; extra `env` reaches the script (e.g.
    TUS_AUTHORIZATION). The upload's URL is the last line of its stdout."""
    node, _ = require_node()
    package = install_interop_packages() / "tus-js-client"
    return subprocess.run(
        [
            node,
            str(INTEROP / "tus_js_upload.mjs"),
            endpoint,
            str(source),
            str(parallel),
            str(chunk_size),
        ],
        env={**os.environ, "TUS_JS_CLIENT_DIR": str(package), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
