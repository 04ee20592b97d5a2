"""Accounts in the page, in headless Chromium against a live server with TUSSERVER_AUTH=required:
sign in, upload, copy a link that works with no cookie, sign out; API tokens; the admin's view
of every file and of the users."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.test_webclient import UNNAMED_CONTROLS_JS, expect_done, file_row
from tests.support.browser import random_file, sha256_file
from tests.support.live import LiveServer, live_server

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "admin-pw-for-tests"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[LiveServer]:
    """gunicorn with accounts on; the first admin's password is known to the test."""
    env = {"TUSSERVER_AUTH": "required", "TUSSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with live_server(tmp_path / "data", redis_url, env=env) as running:
        yield running


def signed_in(server: LiveServer, name: str, password: str) -> requests.Session:
    """A requests session holding a login cookie (and our Origin, as a browser would send)."""
    session = requests.Session()
    session.headers["Origin"] = server.url
    response = session.post(f"{server.url}/api/session", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return session


def create_user(server: LiveServer, name: str, password: str, role: str = "user") -> None:
    admin = signed_in(server, "admin", ADMIN_PASSWORD)
    response = admin.post(
        f"{server.url}/api/users", json={"name": name, "password": password, "role": role}
    )
    assert response.status_code == 201, response.text


def log_in(page: Page, server: LiveServer, name: str, password: str) -> None:
    page.goto(server.url)
    expect(page.get_by_test_id("login-section")).to_be_visible()
    login = page.get_by_test_id("login-section")
    login.get_by_label("User name").fill(name)
    login.get_by_label("Password", exact=True).fill(password)
    login.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("account-name")).to_have_text(name)
    expect(page.get_by_test_id("file-list-status")).not_to_have_text("Loading…")


def tus_upload(server: LiveServer, token: str, data: bytes, filename: str) -> str:
    """Upload with a bearer token, as a script would."""
    import base64

    auth = {"Authorization": f"Bearer {token}", **TUS}
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    created = requests.post(
        f"{server.url}/files/",
        headers={**auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    patched = requests.patch(
        created.headers["Location"],
        data=data,
        headers={
            **auth,
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        timeout=10,
    )
    assert patched.status_code == 204, patched.text
    return created.headers["Location"]


# ---- sign in, upload, link, sign out ---------------------------------------------------------


def test_sign_in_upload_copy_link_download_it_without_cookie_and_sign_out(
    server: LiveServer, browser: Any, page: Page, context: Any, tmp_path: Path
) -> None:
    create_user(server, "ann", "ann-password-1")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    source = random_file(tmp_path / "report.bin", 300_000)

    page.goto(server.url)
    expect(page.get_by_test_id("login-section")).to_be_visible()
    expect(page.get_by_test_id("signed-in")).to_be_hidden()
    expect(page.get_by_role("link", name="Skip to uploaded files")).to_be_hidden()
    log_in(page, server, "ann", "ann-password-1")
    expect(page.get_by_role("link", name="Skip to uploaded files")).not_to_have_attribute(
        "hidden", ""
    )
    expect(page.get_by_role("heading", name="My files")).to_be_visible()
    expect(page.get_by_test_id("users-section")).to_be_hidden()  # not an admin

    page.get_by_test_id("file-input").set_input_files(source)
    expect_done(page, source.name)

    row = file_row(page, source.name)
    row.get_by_role("button", name=f"Copy a link to {source.name}").click()
    row.get_by_label(f"Lifetime of the link to {source.name}").select_option(label="1 hour")
    row.get_by_role("button", name="Create and copy link").click()
    link_field = row.get_by_label(f"Link to {source.name}", exact=True)
    expect(link_field).not_to_have_value("")
    link = link_field.input_value()
    assert link.startswith(f"{server.url}/links/"), link
    assert page.evaluate("() => navigator.clipboard.readText()") == link

    # A fresh browser context: no cookie, no storage. The link alone downloads the file.
    stranger = browser.new_context()
    try:
        response = stranger.request.get(link)
        assert response.status == 200
        assert hashlib.sha256(response.body()).hexdigest() == sha256_file(source)
        direct = link.replace("/links/", "/files/").split("?")[0]
        assert stranger.request.get(direct).status in (401, 404)
    finally:
        stranger.close()

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_test_id("login-section")).to_be_visible()
    expect(page.get_by_test_id("signed-in")).to_be_hidden()
    expect(page.get_by_test_id("file-list")).to_be_empty()
    assert page.evaluate("() => fetch('/api/me').then((r) => r.status)") == 401
    page.reload()
    expect(page.get_by_test_id("login-section")).to_be_visible()


def test_a_wrong_password_is_refused_with_a_message(server: LiveServer, page: Page) -> None:
    page.goto(server.url)
    login = page.get_by_test_id("login-section")
    login.get_by_label("User name").fill("admin")
    login.get_by_label("Password", exact=True).fill("not the password")
    login.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")
    expect(page.get_by_test_id("signed-in")).to_be_hidden()
    expect(login.get_by_label("Password", exact=True)).to_have_value("")

    # Guessing on: past the per-name limit the server answers 429, and the page says when to retry.
    for attempt in range(2, 7):
        login.get_by_label("Password", exact=True).fill(f"guess {attempt}")
        login.get_by_role("button", name="Sign in").click()
        expect(login.get_by_role("button", name="Sign in")).to_be_enabled()
    expect(page.get_by_test_id("login-error")).to_have_text(
        re.compile(r"^Too many attempts: try again in \d+ s\.$")
    )


# ---- tokens ------------------------------------------------------------------------------------


def test_token_is_shown_once_works_and_stops_working_when_revoked(
    server: LiveServer, page: Page
) -> None:
    create_user(server, "tom", "tom-password-1")
    log_in(page, server, "tom", "tom-password-1")
    section = page.get_by_test_id("tokens-section")
    expect(section.get_by_test_id("tokens-status")).to_have_text("No tokens yet.")

    section.get_by_label("Label").fill("backup job")
    section.get_by_label("Expires").select_option(label="30 days")
    section.get_by_role("button", name="Create token").click()
    value = section.get_by_label("New token")
    expect(value).not_to_have_value("")
    token = value.input_value()
    assert token.startswith("tus_")
    rows = section.get_by_test_id("token-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("backup job")
    assert token not in rows.first.inner_text(), "the list never shows the secret"

    me = requests.get(
        f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 200 and me.json()["name"] == "tom"

    section.get_by_role("button", name="Done").click()
    expect(section.get_by_test_id("token-created")).to_be_hidden()
    assert section.get_by_label("New token").input_value() == ""

    section.get_by_role("button", name="Revoke token backup job").click()
    expect(section.get_by_test_id("tokens-status")).to_have_text("No tokens yet.")
    again = requests.get(
        f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert again.status_code == 401


# ---- the admin's view --------------------------------------------------------------------------


def test_admin_creates_a_user_sees_every_file_with_its_owner_and_manages_the_user(
    server: LiveServer, page: Page, tmp_path: Path
) -> None:
    log_in(page, server, "admin", ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="All files")).to_be_visible()
    users = page.get_by_test_id("users-section")
    expect(users).to_be_visible()

    form = users.get_by_test_id("user-form")
    form.get_by_label("Name").fill("bob")
    form.get_by_label("Password").fill("bob-password-1")
    form.get_by_label("Quota").fill("10M")
    form.get_by_role("button", name="Create user").click()
    bob_row = users.locator("tr[data-name='bob']")
    expect(bob_row).to_be_visible()
    expect(bob_row.get_by_test_id("user-usage")).to_have_text("0 B of 10 MiB")

    # bob uploads with a token of his own; the admin's own upload goes through the page.
    bob = signed_in(server, "bob", "bob-password-1")
    token = bob.post(f"{server.url}/api/tokens", json={"label": "cli"}).json()["token"]
    tus_upload(server, token, b"bob's bytes", "bob.txt")
    mine = random_file(tmp_path / "admin.bin", 1000)
    page.get_by_test_id("file-input").set_input_files(mine)
    expect_done(page, mine.name)

    page.get_by_role("button", name="Refresh").click()
    expect(file_row(page, "bob.txt").get_by_test_id("owner")).to_have_text("bob")
    expect(file_row(page, mine.name).get_by_test_id("owner")).to_have_text("admin")

    page.get_by_label("Show the files of").fill("bob")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("file-list-status")).to_have_text("1 file of bob.")
    expect(page.get_by_test_id("file-row")).to_have_count(1)
    page.get_by_role("button", name="Everyone").click()
    expect(page.get_by_test_id("file-row")).to_have_count(2)

    # Role, quota, disable, reset password: each reaches the server.
    bob_row.get_by_label("Role of bob", exact=True).select_option("admin")
    expect(page.locator("#announcer")).to_have_text("bob is now admin.")
    bob_row = users.locator("tr[data-name='bob']")
    bob_row.get_by_label("Quota of bob", exact=True).fill("0")
    bob_row.get_by_role("button", name="Set quota of bob").click()
    expect(page.locator("#announcer")).to_have_text("bob now has no quota.")
    bob_row = users.locator("tr[data-name='bob']")
    bob_row.get_by_role("button", name="Reset the password of bob").click()
    bob_row.get_by_label("New password for bob", exact=True).fill("bob-password-2")
    bob_row.get_by_role("button", name="Save the new password of bob").click()
    expect(page.locator("#announcer")).to_contain_text("Password of bob changed")
    signed_in(server, "bob", "bob-password-2")
    bob_row = users.locator("tr[data-name='bob']")
    bob_row.get_by_test_id("user-disabled").check()
    expect(page.locator("#announcer")).to_have_text("bob disabled.")

    admin = signed_in(server, "admin", ADMIN_PASSWORD)
    listed = {u["name"]: u for u in admin.get(f"{server.url}/api/users").json()["users"]}
    assert listed["bob"]["role"] == "admin"
    assert listed["bob"]["disabled"] is True
    assert listed["bob"]["quota_override"] == 0
    refused = requests.post(
        f"{server.url}/api/session", json={"name": "bob", "password": "bob-password-2"}
    )
    assert refused.status_code == 401
    assert (
        requests.get(
            f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code
        == 401
    )
    expect(page.locator("#errors")).to_be_empty()


def test_admin_view_fits_a_small_screen_with_named_controls(
    server: LiveServer, page: Page, tmp_path: Path
) -> None:
    create_user(server, "someone-with-a-rather-long-name", "password-1234")
    page.set_viewport_size({"width": 360, "height": 740})
    log_in(page, server, "admin", ADMIN_PASSWORD)
    page.get_by_test_id("file-input").set_input_files(random_file(tmp_path / "x.bin", 10))
    expect_done(page, "x.bin")
    tokens = page.get_by_test_id("tokens-section")
    tokens.get_by_label("Label").fill("phone")
    tokens.get_by_role("button", name="Create token").click()
    expect(tokens.get_by_test_id("token-row")).to_have_count(1)
    expect(page.get_by_test_id("user-row")).to_have_count(2)
    file_row(page, "x.bin").get_by_role("button", name="Copy a link to x.bin").click()

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"horizontal scroll at 360 px: scrollWidth={width}"
    names = page.evaluate(UNNAMED_CONTROLS_JS)
    assert names["unnamed"] == []
    assert names["checked"] >= 30
