"""Programs from outside Python that some tests drive (Chromium, node, docker-compose, ...).

Outside CI a missing program skips its tests with a reason `-ra` prints; in CI (where
`.ci/run` installs them all) it fails them, so a CI run can never pass without running them.
"""

from __future__ import annotations

import shutil

import pytest

from tests.support.skip_guard import in_ci


def missing(message: str) -> None:
    """Fail (in CI) or skip (elsewhere) the current test because `message` is not installed."""
    if in_ci():
        pytest.fail(f"{message}: CI must install it (.ci/run)", pytrace=False)
    pytest.skip(message)


def require_executable(name: str, package: str) -> str:
    """The path of program `name` on PATH; `package` is the Debian package that provides it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not on PATH (Debian package `{package}`)")
        raise AssertionError("unreachable")  # pytest.fail and pytest.skip raise
    return path
