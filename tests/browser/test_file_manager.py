"""The file manager in Chromium: thumbnails made before upload, tags edited on the page, tag
chips and the search box filtering the table, and the sortable columns.

Also saves the page as a screenshot (`docs/file-manager.png` when `TUSSERVER_SCREENSHOT=1`,
else under the test's tmp_path) so the README's picture is the page these tests drive.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_webclient import download_link, expect_done, file_row, open_client
from tests.support.live import ROOT, LiveServer

pytestmark = pytest.mark.browser


def png(path: Path, width: int = 120, height: int = 80) -> Path:
    """A real PNG (a colour gradient) that the browser can decode for its thumbnail."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 2 % 256, y * 3 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def expect_table(page: Page, names: list[str]) -> None:
    """The table shows exactly these files, in this order (waiting for a reload to land)."""
    expect(page.get_by_test_id("file-row").get_by_test_id("download")).to_have_text(names)


def set_tags(page: Page, name: str, tags: str) -> None:
    row = file_row(page, name)
    row.get_by_test_id("edit-tags").click()
    row.get_by_test_id("tags-input").fill(tags)
    row.get_by_test_id("tags-save").click()


def test_tag_search_sort_and_thumbnail(server: LiveServer, page: Page, tmp_path: Path) -> None:
    image = png(tmp_path / "beach.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("a few words\n" * 200)
    archive = tmp_path / "archive.bin"
    archive.write_bytes(os.urandom(50_000))
    open_client(page, server.url)
    page.get_by_test_id("file-input").set_input_files([str(image), str(notes), str(archive)])
    for name in ("beach.png", "notes.txt", "archive.bin"):
        expect_done(page, name)

    # The image shows the thumbnail made in the browser; the others a type icon.
    thumbnail = file_row(page, "beach.png").get_by_test_id("thumbnail")
    expect(thumbnail).to_be_visible()
    assert (thumbnail.get_attribute("src") or "").startswith("data:image/")
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(file_row(page, "notes.txt").get_by_test_id("thumbnail")).to_be_hidden()
    expect(file_row(page, "notes.txt").get_by_test_id("type-icon")).to_be_visible()

    # Tags edited on the page, shown as chips.
    set_tags(page, "beach.png", "holiday, photo")
    set_tags(page, "notes.txt", "holiday")
    expect(file_row(page, "beach.png").get_by_test_id("tag-chip")).to_have_count(2)
    expect(file_row(page, "notes.txt").get_by_test_id("tag-chip")).to_have_text(["#holiday"])

    # A chip filters the table; removing the filter shows everything again.
    file_row(page, "notes.txt").get_by_test_id("tag-chip").click()
    expect(page.get_by_test_id("tag-filter")).to_have_text(["#holiday \u00d7"])
    expect(page.get_by_test_id("file-row")).to_have_count(2)
    file_row(page, "beach.png").get_by_test_id("tag-chip").filter(has_text="photo").click()
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    expect(download_link(page, "beach.png")).to_be_visible()
    for chip in page.get_by_test_id("tag-filter").all()[::-1]:
        chip.click()
    expect(page.get_by_test_id("file-row")).to_have_count(3)

    # The search box (case-insensitive substring of the name).
    page.get_by_test_id("file-search-input").fill("NOTE")
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    expect(download_link(page, "notes.txt")).to_be_visible()
    page.get_by_test_id("file-search-input").fill("zzz")
    expect(page.get_by_test_id("file-list-status")).to_have_text("No files match.")
    page.get_by_test_id("file-search-input").fill("")
    expect(page.get_by_test_id("file-row")).to_have_count(3)

    # Sorting by the column headers.
    page.get_by_test_id("sort-name").click()
    expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "ascending")
    expect_table(page, ["archive.bin", "beach.png", "notes.txt"])
    page.get_by_test_id("sort-name").click()
    expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "descending")
    expect_table(page, ["notes.txt", "beach.png", "archive.bin"])
    page.get_by_test_id("sort-size").click()
    sizes = [image.stat().st_size, notes.stat().st_size, archive.stat().st_size]
    by_size = [
        n for _, n in sorted(zip(sizes, ["beach.png", "notes.txt", "archive.bin"], strict=True))
    ]
    expect_table(page, by_size)

    page.get_by_test_id("sort-created").click()
    expect(page.locator("th[data-sort=created]")).to_have_attribute("aria-sort", "descending")
    target = ROOT / "docs" / "file-manager.png"
    if os.environ.get("TUSSERVER_SCREENSHOT") != "1":
        target = tmp_path / "file-manager.png"
    page.locator("section:has(#files-heading)").screenshot(path=str(target))
    assert target.stat().st_size > 0
