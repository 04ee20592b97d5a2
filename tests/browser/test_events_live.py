"""Live updates in Chromium: an upload made in one tab appears in another tab of the same user
without a reload, and its progress moves there as chunks reach the server.

The uploading tab's PATCH requests pass a PatchGate one at a time, so "one chunk on the server"
is a state the test reaches without sleeps; the watching tab learns of it only through
`GET /api/events` (it never reloads its list by itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import PatchGate, random_file
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser

KiB = 1024
CHUNK = 64 * KiB


def open_client(page: Page, base: str, query: str = "") -> None:
    page.goto(f"{base}/{query}")
    expect(page.get_by_test_id("file-list-status")).not_to_have_text("Loading…")


def test_an_upload_in_one_tab_appears_in_another_and_its_progress_moves(
    context: Any, page: Page, server: LiveServer, tmp_path: Path
) -> None:
    watcher = context.new_page()
    open_client(watcher, server.url)
    expect(watcher.get_by_test_id("file-list-status")).to_have_text("No files uploaded yet.")
    source = random_file(tmp_path / "live.bin", 4 * CHUNK)

    open_client(page, server.url, f"?chunkSize={CHUNK}")
    gate = PatchGate(page, allow=1)
    page.get_by_test_id("file-input").set_input_files(source)
    gate.wait_held()  # one chunk is on the server, the second is held

    link = watcher.get_by_role("link", name="live.bin", exact=True)
    row = watcher.get_by_test_id("file-row").filter(has=link)
    expect(row).to_have_count(1)
    expect(row.locator(".incomplete-text")).to_contain_text("(25%)")

    gate.release_one()  # the second chunk goes on; the third is held
    gate.wait_held()
    expect(row.locator(".incomplete-text")).to_contain_text("(50%)")

    gate.open()
    expect(row.get_by_test_id("incomplete")).to_be_hidden()
    expect(row.get_by_test_id("share")).to_be_visible()  # complete: it can be shared now
