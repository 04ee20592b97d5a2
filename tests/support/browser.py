"""Headless Chromium for the web client's tests (Playwright driving Debian's `chromium`).

No browser is ever downloaded: Playwright launches `/usr/bin/chromium`. Without it the browser
tests are skipped, except in CI (`CI` set), where the package is installed and a missing browser
is a failure.

Also here: a static HTTP server for a second origin (CORS tests), a "gate" that holds tus PATCH
requests so a test can stop an upload at a known offset, and small file helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.tools import missing

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
MiB = 1024 * 1024


def require_chromium() -> Path:
    """The Chromium binary, or skip (locally) / fail (in CI) when it is not installed."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    missing(f"{CHROMIUM} not found (Debian package `chromium`)")
    raise AssertionError("unreachable")  # missing() fails or skips


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's sync API), closed on exit."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


# ---- diagnostics ---------------------------------------------------------------------------


@dataclass
class PageLog:
    """What a page printed or failed at: saved next to the screenshot when a test fails."""

    lines: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda msg: self.lines.append(f"console.{msg.type}: {msg.text}"))
        page.on("pageerror", lambda error: self.lines.append(f"pageerror: {error}"))
        page.on(
            "requestfailed",
            lambda req: self.lines.append(
                f"requestfailed: {req.method} {req.url}: {req.failure or ''}"
            ),
        )

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def save_failure_artifacts(page: Any, log: PageLog, directory: Path) -> list[Path]:
    """Screenshot and console log of a failed test's page (best effort: the page may be dead)."""
    saved = []
    directory.mkdir(parents=True, exist_ok=True)
    screenshot = directory / "failure-screenshot.png"
    with contextlib.suppress(Exception):
        page.screenshot(path=str(screenshot), full_page=True, timeout=5000)
        saved.append(screenshot)
    console = directory / "failure-console.log"
    console.write_text(log.text())
    saved.append(console)
    return saved


# ---- a second origin -----------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on a free port of 127.0.0.1; yields the origin URL."""
    handler = partial(_QuietHandler, directory=str(directory))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="static-origin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ---- holding PATCH requests ----------------------------------------------------------------


class PatchGate:
    """A Playwright route on the tus endpoint that lets `allow` PATCH requests through and holds
    every later one (the request never reaches the server) until `open()`.

    Every other method passes straight through. With the gate holding, the server's offset
    stands still at a known place, so "mid-upload" is a state a test can reach without timing.

    Do not just unroute a gate that holds requests: Chromium continues paused requests when
    interception ends, so a held PATCH would reach the server after all. `reject()` first.
    """

    def __init__(self, page: Any, allow: int, pattern: str = "**/files/**"):
        self.page = page
        self.pattern = pattern
        self.allow = allow
        self.passed = 0
        self.held: list[Any] = []
        self.mode = "counting"  # then "open" (pass all) or "reject" (fail every PATCH)
        page.route(pattern, self._handle)

    def _handle(self, route: Any) -> None:
        if route.request.method != "PATCH" or self.mode == "open":
            route.continue_()
        elif self.mode == "reject":
            route.abort("connectionreset")
        elif self.passed < self.allow:
            self.passed += 1
            route.continue_()
        else:
            self.held.append(route)

    def wait_held(self, count: int = 1, timeout: float = 30) -> None:
        """Process browser events until at least `count` PATCH requests are held."""
        wait_until(self.page, lambda: len(self.held) >= count, timeout, f"{count} held PATCH")

    def hold(self) -> None:
        """Hold from the next PATCH on (again)."""
        self.mode = "counting"
        self.allow = self.passed

    def release_one(self) -> None:
        """Let the oldest held PATCH go on, and hold the next one again."""
        route = self.held.pop(0)
        self.passed += 1
        self.allow = self.passed
        with contextlib.suppress(Exception):
            route.continue_()

    def reject(self, error_code: str = "connectionreset") -> None:
        """Fail the held PATCH requests as a broken connection would, and every later one."""
        self.mode = "reject"
        held, self.held = self.held, []
        for route in held:
            with contextlib.suppress(Exception):
                route.abort(error_code)

    def open(self) -> None:
        """Let the held requests go on (those the page aborted meanwhile are skipped) and pass
        everything from now on."""
        self.mode = "open"
        held, self.held = self.held, []
        for route in held:
            with contextlib.suppress(Exception):
                route.continue_()


def wait_until(page: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a Python-side condition while letting Playwright dispatch events (route handlers,
    request listeners run only while the sync API is inside a call)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        page.wait_for_timeout(25)


# ---- files ---------------------------------------------------------------------------------


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()
