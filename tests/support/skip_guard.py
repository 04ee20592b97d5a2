"""In CI a skipped test is a failure: a suite that skips what it covers proves nothing.

Loaded by `tests/conftest.py` (as a pytest plugin). When the environment says CI
(`CI` set to anything but "", "0", "false" or "no"), every skip, at collection or at run time,
and every xfail becomes a failure that names the reason, unless the test's node id is listed in
`ALLOWED_SKIPS` together with why it may be skipped. Outside CI skips stay skips (a developer
without Chromium can still run the rest), and `-ra` lists them with their reasons.

A run that collects no test at all never passes in CI either (pytest's exit status 5 stays).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

ALLOWED_SKIPS: dict[str, str] = {}
"""node id -> why CI may skip it. Keep it empty: install what the test needs instead."""


def in_ci() -> bool:
    """Whether this run is CI's (`.ci/run` sets CI=true, as most CI services do)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    if getattr(report, "wasxfail", None) is not None:
        return f"xfail: {report.wasxfail}"  # type: ignore[attr-defined]
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (in_ci() and report.skipped) or report.nodeid in ALLOWED_SKIPS:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped in CI: {_reason(report)}\n"
        "CI runs every test: install what it needs (.ci/run), or name it in "
        "tests/support/skip_guard.py ALLOWED_SKIPS with the reason."
    )
    if hasattr(report, "wasxfail"):
        del report.wasxfail  # else pytest still counts it as an xfail


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _as_failure(outcome.get_result())


def pytest_report_header(config: pytest.Config) -> str | None:
    if in_ci():
        return f"CI: every skip is a failure ({len(ALLOWED_SKIPS)} allowed)"
    return None
