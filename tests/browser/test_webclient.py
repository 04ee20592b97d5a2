"""The web client at `/`, driven in headless Chromium against a live server.

Every test starts `tusserver serve` (gunicorn, local store) on the session's Redis and uses a
fresh browser context, so neither the server's uploads nor localStorage leak between tests.
Mid-upload states are reached with a PatchGate (PATCH requests held before they reach the
server), never with sleeps.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support.browser import (
    MiB,
    PatchGate,
    random_file,
    sha256,
    sha256_file,
    static_server,
    wait_until,
)
from tests.support.live import ROOT, LiveServer, live_server

pytestmark = pytest.mark.browser

KiB = 1024
TUS = {"Tus-Resumable": "1.0.0"}
# Short retry delays, many of them: a cut connection is retried every 250 ms instead of after
# 1-10 s, and the client keeps trying for ~7 s before it gives up.
FAST_RETRIES = ",".join(["0"] + ["250"] * 30)


# ---- helpers -------------------------------------------------------------------------------


def open_client(page: Page, base: str, path: str = "/", **query: object) -> None:
    """Load the page and wait until app.js has run (the file list's first load has ended)."""
    url = f"{base}{path}"
    if query:
        url += "?" + urlencode({k: str(v) for k, v in query.items()})
    page.goto(url)
    expect(page.get_by_test_id("file-list-status")).not_to_have_text("Loading…")


def upload_row(page: Page, name: str) -> Any:
    return page.get_by_test_id("upload-row").filter(
        has=page.get_by_test_id("name").get_by_text(name, exact=True)
    )


def download_link(page: Page, name: str) -> Any:
    return page.locator("#file-list").get_by_role("link", name=name, exact=True)


def file_row(page: Page, name: str) -> Any:
    link = page.get_by_role("link", name=name, exact=True)
    return page.get_by_test_id("file-row").filter(has=link)


def expect_done(page: Page, name: str) -> None:
    row = upload_row(page, name)
    expect(row).to_have_attribute("data-state", "done")
    expect(row.get_by_test_id("percent")).to_have_text("100%")
    expect(download_link(page, name)).to_be_visible()


def uploads(server: LiveServer) -> list[dict[str, Any]]:
    response = requests.get(f"{server.url}/api/uploads", timeout=10)
    response.raise_for_status()
    return response.json()["uploads"]


def only_upload(server: LiveServer) -> dict[str, Any]:
    listed = uploads(server)
    assert len(listed) == 1, listed
    return listed[0]


def server_offset(url: str) -> int:
    response = requests.head(url, headers=TUS, timeout=10)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def download_href(page: Page, name: str) -> bytes:
    """GET the file list's download link (the href the page rendered) outside the browser."""
    href = download_link(page, name).get_attribute("href")
    assert href
    response = requests.get(href, timeout=60)
    assert response.status_code == 200, response.text[:200]
    return response.content


def stored_part_urls(page: Page) -> list[str]:
    """The part URLs of the one parallel upload remembered in localStorage."""
    return stored_parallel_upload(page)["parts"]


def stored_parallel_upload(page: Page) -> dict[str, Any]:
    """The one parallel upload remembered in localStorage: its parts and final upload URL."""
    entries = page.evaluate(
        """() => Object.keys(localStorage)
            .filter((key) => key.startsWith('tus::'))
            .map((key) => JSON.parse(localStorage.getItem(key)))"""
    )
    assert len(entries) == 1, entries
    return entries[0]


class RequestLog:
    """tus requests the page sent (method, url, Upload-Offset), from page.on('request')."""

    def __init__(self, page: Page):
        self.entries: list[tuple[str, str, dict[str, str]]] = []
        page.on("request", self._record)

    def _record(self, request: Any) -> None:
        if "/files/" in request.url:
            self.entries.append((request.method, request.url, request.headers))

    def clear(self) -> None:
        self.entries.clear()

    def of(self, method: str) -> list[tuple[str, dict[str, str]]]:
        return [(url, headers) for m, url, headers in self.entries if m == method]


# ---- (a) upload, list, download --------------------------------------------------------------


def test_upload_appears_in_list_and_downloads_identical(
    server: LiveServer, page: Page, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "twenty.bin", 20 * MiB + 321)
    open_client(page, server.url)  # default chunk size: 5 MiB
    requests_seen = RequestLog(page)

    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)

    patches = requests_seen.of("PATCH")
    assert len(patches) == 5, "20 MiB + 321 bytes in 5 MiB chunks"
    upload = only_upload(server)
    assert upload["complete"] and upload["size"] == source.stat().st_size
    assert upload["filename"] == source.name
    expect(file_row(page, source.name).get_by_test_id("size")).to_have_text("20 MiB")

    with page.expect_download() as info:
        download_link(page, source.name).click()
    download = info.value
    assert download.suggested_filename == source.name
    assert sha256_file(Path(download.path())) == sha256_file(source)


# ---- (b) connection lost mid-upload -----------------------------------------------------------


def test_upload_survives_lost_connection(
    server: LiveServer, page: Page, context: Any, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "flaky.bin", 6 * MiB + 7)
    open_client(page, server.url, chunkSize=MiB, retryDelays=FAST_RETRIES)
    gate = PatchGate(page, allow=2)
    row = upload_row(page, source.name)

    page.get_by_test_id("file-input").set_input_files(source)
    gate.wait_held()  # two chunks are on the server, the third is on the wire
    context.set_offline(True)
    gate.reject("internetdisconnected")  # the connection drops under the third chunk
    expect(row).to_have_attribute("data-state", "retrying")
    expect(row.get_by_test_id("status")).to_contain_text("Retrying")
    assert only_upload(server)["offset"] == 2 * MiB

    context.set_offline(False)
    gate.open()
    expect_done(page, source.name)
    upload = only_upload(server)  # resumed: still the one upload, not a second one
    assert upload["complete"]
    assert sha256(download_href(page, source.name)) == sha256_file(source)


# ---- (c) page reload mid-upload ---------------------------------------------------------------


def test_reload_resumes_from_stored_offset(server: LiveServer, page: Page, tmp_path: Path) -> None:
    chunk = 256 * KiB
    source = random_file(tmp_path / "reload.bin", 4 * MiB + 99)
    open_client(page, server.url, chunkSize=chunk)
    log = RequestLog(page)
    gate = PatchGate(page, allow=3)

    page.get_by_test_id("file-input").set_input_files(source)
    gate.wait_held()
    before = only_upload(server)
    assert before["offset"] == 3 * chunk and not before["complete"]

    gate.reject()  # no byte more reaches the server before the reload
    page.reload()
    expect(page.get_by_test_id("file-list-status")).not_to_have_text("Loading…")
    expect(page.get_by_test_id("upload-row")).to_have_count(0)
    assert only_upload(server)["offset"] == before["offset"]
    gate.hold()
    log.clear()
    page.get_by_test_id("file-input").set_input_files(source)  # the same file, picked again
    gate.wait_held()
    status = upload_row(page, source.name).get_by_test_id("status")
    expect(status).to_have_text("Uploading — resumed at 18%")  # 768 KiB of 4 MiB
    gate.open()
    expect_done(page, source.name)
    expect(upload_row(page, source.name).get_by_test_id("status")).to_have_text("Done")

    assert log.of("POST") == [], "the upload must be resumed, not created again"
    assert [url for url, _ in log.of("HEAD")] == [before["url"]]
    offsets = [int(headers["upload-offset"]) for _, headers in log.of("PATCH")]
    assert offsets == list(range(3 * chunk, source.stat().st_size, chunk))
    sent_after_reload = source.stat().st_size - offsets[0]
    assert sent_after_reload < source.stat().st_size
    assert sha256(download_href(page, source.name)) == sha256_file(source)


# ---- (d) pause and resume ---------------------------------------------------------------------


def test_pause_stops_and_resume_completes(server: LiveServer, page: Page, tmp_path: Path) -> None:
    chunk = 256 * KiB
    source = random_file(tmp_path / "pause.bin", 3 * MiB + 5)
    open_client(page, server.url, chunkSize=chunk)
    gate = PatchGate(page, allow=4)
    row = upload_row(page, source.name)

    page.get_by_test_id("file-input").set_input_files(source)
    gate.wait_held()
    row.get_by_test_id("pause").click()
    expect(row).to_have_attribute("data-state", "paused")
    expect(row.get_by_test_id("pause")).to_be_hidden()
    expect(row.get_by_test_id("resume")).to_be_visible()

    # From here on nothing holds the upload back: if pausing had not stopped it, it would finish.
    gate.open()
    url = only_upload(server)["url"]
    first = server_offset(url)
    page.wait_for_timeout(600)
    second = server_offset(url)
    assert first == second == 4 * chunk
    expect(row).to_have_attribute("data-state", "paused")

    row.get_by_test_id("resume").click()
    expect_done(page, source.name)
    assert server_offset(url) == source.stat().st_size
    assert sha256(download_href(page, source.name)) == sha256_file(source)


# ---- queue: concurrency limit, cancel, clear finished -------------------------------------------


def test_concurrency_limit_and_cancel(server: LiveServer, page: Page, tmp_path: Path) -> None:
    first = random_file(tmp_path / "first.bin", 2 * MiB + 1)
    second = random_file(tmp_path / "second.bin", 2 * MiB + 2)
    open_client(page, server.url, chunkSize=MiB, concurrency=1)
    expect(page.get_by_test_id("concurrency")).to_have_value("1")
    gate = PatchGate(page, allow=0)

    page.get_by_test_id("file-input").set_input_files([first, second])
    gate.wait_held()
    expect(upload_row(page, first.name)).to_have_attribute("data-state", "uploading")
    expect(upload_row(page, second.name)).to_have_attribute("data-state", "queued")
    expect(upload_row(page, second.name).get_by_test_id("status")).to_have_text("Waiting")
    first_url = only_upload(server)["url"]  # the second one is not even created yet

    # Cancelling the running upload frees the slot and terminates it on the server.
    upload_row(page, first.name).get_by_test_id("cancel").click()
    expect(upload_row(page, first.name)).to_have_count(0)
    expect(upload_row(page, second.name)).to_have_attribute("data-state", "uploading")
    wait_until(
        page,
        lambda: requests.head(first_url, headers=TUS, timeout=10).status_code in (404, 410),
        10,
        "the cancelled upload to be terminated",
    )
    gate.open()
    expect_done(page, second.name)
    assert [u["filename"] for u in uploads(server)] == [second.name]
    assert sha256(download_href(page, second.name)) == sha256_file(second)

    page.get_by_test_id("clear-finished").click()
    expect(page.get_by_test_id("upload-row")).to_have_count(0)
    expect(page.get_by_test_id("clear-finished")).to_be_hidden()
    expect(page.locator("#errors")).to_be_empty()


# ---- (e) pasted text --------------------------------------------------------------------------


def test_paste_text_upload(server: LiveServer, page: Page) -> None:
    text = "Grüße aus dem Browser ✓\nline two\n"
    open_client(page, server.url)
    page.get_by_test_id("paste-text").fill(text)
    page.get_by_test_id("paste-name").fill("notes")
    page.get_by_test_id("paste-submit").click()

    expect_done(page, "notes.txt")
    expect(page.get_by_test_id("paste-text")).to_have_value("")
    upload = only_upload(server)
    assert upload["filename"] == "notes.txt"
    assert upload["filetype"] == "text/plain"
    assert download_href(page, "notes.txt") == text.encode()


# ---- (f) rename and delete --------------------------------------------------------------------


def test_rename_and_delete_from_list(server: LiveServer, page: Page) -> None:
    open_client(page, server.url)
    for name in ("keep", "first"):
        page.get_by_test_id("paste-text").fill(f"content of {name}\n")
        page.get_by_test_id("paste-name").fill(name)
        page.get_by_test_id("paste-submit").click()
        expect_done(page, f"{name}.txt")
    expect(page.get_by_test_id("file-row")).to_have_count(2)

    # Rename: cancel first (nothing changes), then save.
    row = file_row(page, "first.txt")
    row.get_by_test_id("rename").click()
    expect(row.get_by_test_id("rename-input")).to_be_focused()
    expect(row.get_by_test_id("rename-input")).to_have_value("first.txt")
    row.get_by_test_id("rename-cancel").click()
    expect(row.get_by_test_id("rename-input")).to_be_hidden()
    row.get_by_test_id("rename").click()
    row.get_by_test_id("rename-input").fill("renamed ü.txt")
    row.get_by_test_id("rename-save").click()
    expect(download_link(page, "renamed ü.txt")).to_be_visible()
    expect(download_link(page, "first.txt")).to_have_count(0)
    names = {u["filename"] for u in uploads(server)}
    assert names == {"renamed ü.txt", "keep.txt"}
    renamed = next(u for u in uploads(server) if u["filename"] == "renamed ü.txt")
    disposition = requests.head(renamed["url"], timeout=10).headers["Content-Disposition"]
    assert "renamed%20%C3%BC.txt" in disposition

    # Delete: "Keep" backs out, then confirm.
    row = file_row(page, "renamed ü.txt")
    row.get_by_test_id("delete").click()
    expect(row.get_by_test_id("cancel-delete")).to_be_focused()
    row.get_by_test_id("cancel-delete").click()
    expect(row.get_by_test_id("confirm-delete")).to_be_hidden()
    assert len(uploads(server)) == 2
    row.get_by_test_id("delete").click()
    row.get_by_test_id("confirm-delete").click()
    expect(file_row(page, "renamed ü.txt")).to_have_count(0)
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    expect(page.get_by_test_id("file-list-status")).to_have_text("1 file.")
    assert [u["filename"] for u in uploads(server)] == ["keep.txt"]
    assert requests.head(renamed["url"], headers=TUS, timeout=10).status_code in (404, 410)

    page.get_by_test_id("refresh-list").click()  # the server agrees after a reload of the list
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    expect(page.locator("#errors")).to_be_empty()


# ---- (g) parallel parts -----------------------------------------------------------------------


def test_parallel_upload_concatenates_parts(server: LiveServer, page: Page, tmp_path: Path) -> None:
    source = random_file(tmp_path / "parallel.bin", 12 * MiB + 3)
    open_client(page, server.url)
    log = RequestLog(page)
    page.get_by_test_id("parallel").select_option("4")

    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)

    posts = log.of("POST")
    partial = [h for _, h in posts if h.get("upload-concat") == "partial"]
    assert len(partial) == 4 and len(posts) == 5
    upload = only_upload(server)  # partial uploads are not listed
    head = requests.head(upload["url"], headers=TUS, timeout=10)
    concat = head.headers["Upload-Concat"]
    assert concat.startswith("final;")
    assert len(concat.removeprefix("final;").split()) == 4
    assert head.headers["Upload-Offset"] == str(source.stat().st_size)
    assert sha256(download_href(page, source.name)) == sha256_file(source)


def test_parallel_upload_resumes_each_part_after_reload(
    server: LiveServer, page: Page, tmp_path: Path
) -> None:
    chunk = 512 * KiB
    source = random_file(tmp_path / "parts.bin", 6 * MiB + 10)  # 4 parts of ~1.5 MiB
    open_client(page, server.url, chunkSize=chunk, parallel=4)
    expect(page.get_by_test_id("parallel")).to_have_value("4")
    log = RequestLog(page)
    gate = PatchGate(page, allow=4)

    page.get_by_test_id("file-input").set_input_files(source)
    gate.wait_held(4)  # every part has sent one chunk and waits with its second
    stored = stored_parallel_upload(page)
    part_urls = stored["parts"]
    assert len(part_urls) == 4 and all(part_urls)
    before = {url: server_offset(url) for url in part_urls}
    assert sum(before.values()) == 4 * chunk
    # concatenation-unfinished: the final upload exists already, without an offset yet
    final = requests.head(stored["url"], headers={"Tus-Resumable": "1.0.0"}, timeout=10)
    assert final.headers["Upload-Concat"] == "final;" + " ".join(part_urls)
    assert "Upload-Offset" not in final.headers

    gate.reject()
    page.reload()
    expect(page.get_by_test_id("file-list-status")).not_to_have_text("Loading…")
    assert {url: server_offset(url) for url in part_urls} == before
    gate.open()
    log.clear()
    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)

    assert log.of("POST") == [], "parts and final upload were all made before the reload"
    first_patch: dict[str, int] = {}
    for url, headers in log.of("PATCH"):
        first_patch.setdefault(url, int(headers["upload-offset"]))
    assert first_patch == before, "each part resumes where the server has it"
    assert sha256(download_href(page, source.name)) == sha256_file(source)


# ---- (h) cross-origin ------------------------------------------------------------------------


@pytest.fixture
def second_origin(tmp_path: Path) -> Iterator[str]:
    """A copy of the web client served from another origin (another port of 127.0.0.1)."""
    site = tmp_path / "origin"
    shutil.copytree(ROOT / "webclient", site, ignore=shutil.ignore_patterns("tests"))
    with static_server(site) as origin:
        yield origin


@pytest.fixture
def cors_server(second_origin: str, redis_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server allowing the second origin."""
    env = {"TUSSERVER_CORS_ORIGINS": second_origin}
    with live_server(tmp_path / "data", redis_url, env=env) as server:
        yield server


@pytest.fixture
def cors_elsewhere_server(
    second_origin: str, redis_url: str, tmp_path: Path
) -> Iterator[LiveServer]:
    """A server with CORS on, but for another origin: `localhost` is not `127.0.0.1`."""
    env = {"TUSSERVER_CORS_ORIGINS": second_origin.replace("127.0.0.1", "localhost")}
    with live_server(tmp_path / "data", redis_url, env=env) as server:
        yield server


def cross_origin_query(server: LiveServer, site: Path) -> dict[str, object]:
    """Point the copy of the page at the server. The query string may only name the page's own
    origin, so this is what an operator hosting the page elsewhere does: edit its data- attributes.
    """
    index = site / "index.html"
    html = index.read_text()
    html = html.replace('data-endpoint="/files/"', f'data-endpoint="{server.url}/files/"')
    html = html.replace('data-api="/api/uploads"', f'data-api="{server.url}/api/uploads"')
    index.write_text(html)
    return {"chunkSize": MiB, "retryDelays": "0"}


def test_cross_origin_upload_with_cors(
    second_origin: str, cors_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    server = cors_server
    source = random_file(tmp_path / "cross.bin", 3 * MiB + 1)
    open_client(
        page, second_origin, "/index.html", **cross_origin_query(server, tmp_path / "origin")
    )
    expect(page.get_by_test_id("file-list-status")).to_have_text("No files uploaded yet.")

    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)  # needs Location and Upload-Offset exposed to the page
    expect(file_row(page, source.name)).to_have_count(1)
    expect(page.locator("#errors")).to_be_empty()

    href = download_link(page, source.name).get_attribute("href")
    assert href and href.startswith(f"{server.url}/files/")
    # What the client reads from responses, readable by a script of the other origin:
    exposed = page.evaluate(
        """async (url) => {
            const headers = { 'Tus-Resumable': '1.0.0' };
            const response = await fetch(url, { method: 'HEAD', headers });
            return ['Upload-Offset', 'Upload-Length', 'Upload-Metadata', 'Tus-Resumable']
                .map((name) => response.headers.get(name));
        }""",
        href,
    )
    size = str(source.stat().st_size)
    assert exposed[:2] == [size, size] and exposed[2] and exposed[3] == "1.0.0"
    assert only_upload(server)["complete"]
    assert sha256(download_href(page, source.name)) == sha256_file(source)


def test_cross_origin_refused_without_cors(
    second_origin: str, cors_elsewhere_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    server = cors_elsewhere_server
    source = random_file(tmp_path / "refused.bin", 100 * KiB)
    open_client(
        page, second_origin, "/index.html", **cross_origin_query(server, tmp_path / "origin")
    )
    errors = page.locator("#errors")
    expect(errors).to_contain_text("Could not load the file list")

    page.get_by_test_id("file-input").set_input_files(source)
    row = upload_row(page, source.name)
    expect(row).to_have_attribute("data-state", "error")
    expect(errors).to_contain_text(f"Upload of “{source.name}” failed")
    expect(row.get_by_test_id("resume")).to_have_text("Retry")

    assert uploads(server) == []
    assert "POST /files/" not in server.log()


# ---- accessibility and small screens ----------------------------------------------------------

UNNAMED_CONTROLS_JS = """
() => {
  const text = (el) => (el?.textContent ?? '').replace(/\\s+/g, ' ').trim();
  const nameOf = (el) => {
    const labelledBy = el.getAttribute('aria-labelledby');
    if (labelledBy) {
      const joined = labelledBy.split(/\\s+/)
        .map((id) => text(document.getElementById(id))).join(' ');
      if (joined.trim()) return joined.trim();
    }
    const aria = (el.getAttribute('aria-label') ?? '').trim();
    if (aria) return aria;
    const labels = [...(el.labels ?? [])].map(text).join(' ').trim();
    if (labels) return labels;
    if (el.matches('button, [role=button], a')) {
      if (text(el)) return text(el);
    }
    if (el.matches('input[type=submit], input[type=button]') && el.value) return el.value;
    return (el.getAttribute('title') ?? '').trim();
  };
  // Only what is rendered: hidden controls are not in the accessibility tree.
  const controls = [...document.querySelectorAll(
    'input, select, textarea, button, [role=button], a[href], progress')]
    .filter((el) => el.checkVisibility());
  return {
    checked: controls.length,
    unnamed: controls.filter((el) => !nameOf(el)).map((el) => el.outerHTML.slice(0, 160)),
  };
}
"""


def test_small_screen_and_accessible_names(server: LiveServer, page: Page, tmp_path: Path) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    # No break opportunity in the name: the layout has to wrap or clip it, not scroll sideways.
    source = random_file(tmp_path / ("LongFileName" * 6 + ".bin"), 4321)
    open_client(page, server.url)

    # Keyboard: Tab reaches the drop zone, Enter opens the file picker. Playwright turns on
    # file chooser interception without waiting for it when the first listener is added; do that
    # well before the key press, or a dialog may open uncaught.
    page.on("filechooser", lambda _chooser: None)
    drop_zone = page.get_by_test_id("drop-zone")
    for _ in range(10):
        page.keyboard.press("Tab")
        if drop_zone.evaluate("el => el === document.activeElement"):
            break
    expect(drop_zone).to_be_focused()
    with page.expect_file_chooser() as chooser_info:
        page.keyboard.press("Enter")
    chooser = chooser_info.value
    assert chooser.is_multiple()
    chooser.set_files(source)
    expect_done(page, source.name)

    # With rows in both lists (and a rename form open), check layout and names.
    file_row(page, source.name).get_by_test_id("rename").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"horizontal scroll at 360 px: scrollWidth={width}"
    names = page.evaluate(UNNAMED_CONTROLS_JS)
    assert names["unnamed"] == []
    assert names["checked"] >= 15, "the check must have seen the page's controls"
    assert page.get_by_test_id("upload-row").count() == 1
