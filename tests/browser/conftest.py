"""Browser fixtures: one headless Chromium per session, a fresh context (own localStorage) and
page per test, a live server per test, and a screenshot plus console log when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import PageLog, launch_chromium, save_failure_artifacts
from tests.support.live import LiveServer, live_server

# Playwright's own default is 30 s; an upload of a few MiB to a local server takes well under 5.
EXPECT_TIMEOUT_MS = 20_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Record each phase's report on the item (`item.rep_setup`, `rep_call`, `rep_teardown`),
    so fixtures can tell in their teardown whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with launch_chromium() as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def _expect_timeout() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context: no cookies, no localStorage from other tests."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A page whose console is recorded; screenshot and log go to tmp_path if the test fails."""
    new_page = context.new_page()
    log = PageLog()
    log.attach(new_page)
    yield new_page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        saved = save_failure_artifacts(new_page, log, tmp_path / "browser")
        print("browser artifacts:", *map(str, saved))


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    """gunicorn with the local store on the session's Redis (own key prefix)."""
    with live_server(tmp_path / "data", redis_url) as running:
        yield running
