"""In Chromium: editing a small text file saves a new version and keeps the old one; the token
form gives a token scopes, and the token is held to them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_accounts import ADMIN_PASSWORD, create_user, log_in
from tests.browser.test_webclient import file_row
from tests.support.live import LiveServer, live_server

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    """Accounts on, the first admin's password known (as in test_accounts.py)."""
    env = {"TUSSERVER_AUTH": "required", "TUSSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with live_server(tmp_path / "data", redis_url, env=env) as running:
        yield running


def token_of(server: LiveServer, name: str, password: str) -> str:
    session = requests.Session()
    session.headers["Origin"] = server.url
    assert session.post(
        f"{server.url}/api/session", json={"name": name, "password": password}, timeout=10
    ).ok
    made = session.post(f"{server.url}/api/tokens", json={"label": "setup"}, timeout=10)
    return made.json()["token"]


def test_edit_saves_a_new_version_and_keeps_the_old_one(server: LiveServer, page: Page) -> None:
    create_user(server, "eda", "eda-password-1")
    auth = {"Authorization": f"Bearer {token_of(server, 'eda', 'eda-password-1')}"}
    made = requests.post(
        f"{server.url}/api/files",
        json={"filename": "notes.md", "text": "first line\n", "tags": ["draft"]},
        headers=auth,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    old_id = made.json()["id"]
    requests.post(
        f"{server.url}/api/files",
        json={"filename": "photo.bin", "content_base64": "AAEC"},
        headers=auth,
        timeout=10,
    )

    log_in(page, server, "eda", "eda-password-1")
    expect(file_row(page, "photo.bin").get_by_role("button", name="Edit photo.bin")).to_have_count(
        0
    )
    row = file_row(page, "notes.md")
    row.get_by_role("button", name="Edit notes.md").click()
    editor = page.get_by_role("dialog", name="Edit notes.md")
    text = editor.get_by_label("Text of notes.md")
    expect(text).to_have_value("first line\n")
    text.fill("first line\nsecond line\n")
    editor.get_by_role("button", name="Save as new version").click()
    expect(editor).to_have_count(0)

    expect(file_row(page, "notes.md")).to_have_count(2)
    listed = requests.get(f"{server.url}/api/uploads", headers=auth, timeout=10).json()["uploads"]
    versions = {u["id"]: u for u in listed if u["filename"] == "notes.md"}
    assert old_id in versions and len(versions) == 2
    (new_id,) = set(versions) - {old_id}
    assert versions[new_id]["metadata"]["previous"] == old_id
    assert versions[new_id]["metadata"]["tags"] == "draft"

    def text_of(upload: str) -> str:
        url = f"{server.url}/api/uploads/{upload}/content?encoding=text"
        return requests.get(url, headers=auth, timeout=10).json()["text"]

    assert text_of(new_id) == "first line\nsecond line\n"
    assert text_of(old_id) == "first line\n"


def test_a_token_made_with_scopes_on_the_page_is_held_to_them(
    server: LiveServer, page: Page
) -> None:
    create_user(server, "sam", "sam-password-1")
    log_in(page, server, "sam", "sam-password-1")
    section = page.get_by_test_id("tokens-section")
    expect(section.get_by_test_id("token-scope-admin-label")).to_be_hidden()
    section.get_by_label("Label").fill("dashboard")
    section.get_by_role("checkbox", name="read").check()
    section.get_by_role("button", name="Create token").click()
    value = section.get_by_label("New token")
    expect(value).not_to_have_value("")
    token = value.input_value()
    row = section.get_by_test_id("token-row")
    expect(row.get_by_test_id("token-scopes-cell")).to_have_text("read")

    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}/api/uploads", headers=auth, timeout=10).status_code == 200
    refused = requests.post(
        f"{server.url}/api/files", json={"filename": "x", "text": "x"}, headers=auth, timeout=10
    )
    assert refused.status_code == 403
