"""Accounts on real servers: the CLI with and without a running server, the first admin's login
on the console, two servers sharing Redis, and tus clients sending a bearer token."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tusclient import client as tus_client

from tests.support.live import ROOT, LiveServer, drop_prefix, live_server, start_server
from tests.support.npm import tus_js_upload
from tusserver.auth.accounts import Accounts
from tusserver.settings import Settings
from tusserver.state.accounts import AccountStore
from tusserver.state.connect import connect

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
REQUIRED = {"TUSSERVER_AUTH": "required"}


def cli(
    args: list[str], data_dir: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m tusserver <args>` on `data_dir` (its embedded Redis unless env says)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("TUSSERVER_")}
    full.update({"TUSSERVER_DATA_DIR": str(data_dir), **env})
    return subprocess.run(
        [sys.executable, "-m", "tusserver", *args],
        cwd=ROOT,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def me(server: LiveServer, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{server.url}/api/me", headers=headers, timeout=10).status_code


def test_cli_manages_accounts_with_and_without_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = cli(["users", "add", "alice", "--password-stdin"], data, "alice's password\n")
    assert added.returncode == 0, added.stderr
    made = cli(["tokens", "create", "alice", "--label", "ci", "--expires-in", "1d"], data)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("tus_")  # the token alone

    server = start_server(data, env=REQUIRED, workers=1)  # embedded Redis: the same data
    try:
        assert me(server, token) == 200
        listed = cli(["tokens", "list", "alice"], data)  # while the server runs
        assert listed.returncode == 0, listed.stderr
        token_id = re.search(r"^([0-9a-f]{16})\s", listed.stdout, re.MULTILINE).group(1)
        assert "ci" in listed.stdout

        assert (
            cli(
                ["users", "add", "bob", "--role", "admin", "--password-stdin"],
                data,
                "bob's password\n",
            ).returncode
            == 0
        )
        assert cli(["users", "set-role", "bob", "user"], data).returncode == 0
        users = cli(["users", "list"], data).stdout
        assert re.search(r"^bob\s+user\s+active", users, re.MULTILINE), users
        assert (
            cli(
                ["users", "passwd", "alice", "--password-stdin"], data, "a new password\n"
            ).returncode
            == 0
        )
        login = requests.post(
            f"{server.url}/api/session",
            json={"name": "alice", "password": "a new password"},
            timeout=10,
        )
        assert login.status_code == 200

        assert cli(["tokens", "revoke", token_id], data).returncode == 0
        assert me(server, token) == 401  # at once, on the running server
        assert cli(["users", "remove", "bob"], data).returncode == 0
        missing = cli(["users", "remove", "bob"], data)
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "No such user" in missing.stderr
    finally:
        server.stop()
    assert "alice's password" not in server.log() and token not in server.log()


def test_first_start_shows_the_admin_login_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, env=REQUIRED, workers=1)
    try:
        found = re.search(r"user\s+admin\n\s+password\s+(\S+)", server.log())
        assert found, server.log()
        assert f"login at  {server.url}/" in server.log()
        password = found.group(1)
        login = requests.post(
            f"{server.url}/api/session", json={"name": "admin", "password": password}, timeout=10
        )
        assert login.status_code == 200 and login.json()["role"] == "admin"
        assert requests.get(f"{server.url}/api/uploads", timeout=10).status_code == 401
    finally:
        server.stop()
    again = start_server(data, env=REQUIRED, workers=1)
    again.stop()
    assert "First start" not in again.log()  # only once, on the very first start


def test_admin_password_from_the_environment_is_not_printed(tmp_path: Path) -> None:
    env = {**REQUIRED, "TUSSERVER_ADMIN_PASSWORD": "compose-chosen-secret"}
    server = start_server(tmp_path / "data", env=env, workers=1)
    try:
        assert "compose-chosen-secret" not in server.log()
        assert "TUSSERVER_ADMIN_PASSWORD" in server.log()
        login = requests.post(
            f"{server.url}/api/session",
            json={"name": "admin", "password": "compose-chosen-secret"},
            timeout=10,
        )
        assert login.status_code == 200
    finally:
        server.stop()


# -- two servers, one Redis -------------------------------------------------------------------
@pytest.fixture
def fleet(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer, Accounts]]:
    prefix = f"tuse2e:{uuid.uuid4().hex[:10]}:"
    env = {
        **REQUIRED,
        "TUSSERVER_REDIS_URL": redis_url,
        "TUSSERVER_REDIS_PREFIX": prefix,
        "TUSSERVER_SECRET_KEY": "k" * 40,
    }
    accounts = Accounts(AccountStore(connect(redis_url), prefix), Settings())
    accounts.create_user("root", "root's password", "admin")
    accounts.create_user("alice", "alice's password")
    first = start_server(tmp_path / "a", env=env, workers=1)
    second = start_server(tmp_path / "b", env=env, workers=1)
    try:
        yield first, second, accounts
    finally:
        first.stop()
        second.stop()
        drop_prefix(redis_url, prefix)


def test_a_token_revoked_on_one_server_is_refused_by_the_other(fleet: tuple) -> None:
    first, second, accounts = fleet
    root, _ = accounts.issue_token("root")
    token, record = accounts.issue_token("alice")
    assert me(first, token) == 200 and me(second, token) == 200
    revoked = requests.delete(
        f"{first.url}/api/tokens/{record.id}",
        headers={"Authorization": f"Bearer {root}"},
        timeout=10,
    )
    assert revoked.status_code == 204
    assert me(second, token) == 401


def test_a_user_disabled_on_one_server_is_refused_by_the_other(fleet: tuple) -> None:
    first, second, accounts = fleet
    root, _ = accounts.issue_token("root")
    token, _ = accounts.issue_token("alice")
    browser = requests.Session()
    login = browser.post(
        f"{second.url}/api/session",
        json={"name": "alice", "password": "alice's password"},
        timeout=10,
    )
    assert login.status_code == 200
    assert browser.get(f"{second.url}/api/me", timeout=10).status_code == 200
    disabled = requests.patch(
        f"{first.url}/api/users/alice",
        json={"disabled": True},
        headers={"Authorization": f"Bearer {root}"},
        timeout=10,
    )
    assert disabled.status_code == 200
    assert me(second, token) == 401
    assert browser.get(f"{second.url}/api/me", timeout=10).status_code == 401


# -- tus clients with a bearer token ----------------------------------------------------------
@pytest.fixture
def guarded(tmp_path: Path, redis_url: str) -> Iterator[tuple[LiveServer, str, str]]:
    """A server with accounts on; (server, alice's token, bob's token) made with the CLI."""
    env = {**REQUIRED, "TUSSERVER_REDIS_PREFIX": f"tuse2e:{uuid.uuid4().hex[:10]}:"}
    with live_server(tmp_path / "data", redis_url, env=dict(env)) as server:
        shared = {"TUSSERVER_REDIS_URL": redis_url, **env}
        tokens = []
        for name in ("alice", "bob"):
            added = cli(
                ["users", "add", name, "--password-stdin"], tmp_path, "long enough\n", **shared
            )
            assert added.returncode == 0, added.stderr
            made = cli(["tokens", "create", name], tmp_path, **shared)
            assert made.returncode == 0, made.stderr
            tokens.append(made.stdout.strip())
        yield server, tokens[0], tokens[1]


def test_tuspy_uploads_with_a_bearer_token(guarded: tuple, tmp_path: Path) -> None:
    server, alice, bob = guarded
    source = tmp_path / "five.bin"
    source.write_bytes(os.urandom(5 * MiB + 7))
    anonymous = tus_client.TusClient(f"{server.url}/files/")
    with pytest.raises(Exception, match="401"):
        anonymous.uploader(str(source), chunk_size=MiB).upload()

    client = tus_client.TusClient(
        f"{server.url}/files/", headers={"Authorization": f"Bearer {alice}"}
    )
    uploader = client.uploader(str(source), chunk_size=MiB, metadata={"filename": "five.bin"})
    uploader.upload()
    url = uploader.url

    as_alice = {"Authorization": f"Bearer {alice}"}
    download = requests.get(url, headers=as_alice, timeout=60)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(source.read_bytes()).digest()
    as_bob = {"Authorization": f"Bearer {bob}", **TUS}
    assert requests.head(url, headers=as_bob, timeout=10).status_code == 404
    assert requests.get(url, headers=as_bob, timeout=10).status_code == 404
    listed = requests.get(f"{server.url}/api/uploads", headers=as_bob, timeout=10).json()
    assert listed["total"] == 0


@pytest.mark.parametrize("parallel", [1, 3])
def test_tus_js_client_uploads_with_a_bearer_token(
    guarded: tuple, tmp_path: Path, parallel: int
) -> None:
    server, alice, bob = guarded
    source = tmp_path / "random.bin"
    source.write_bytes(os.urandom(5 * MiB + 99))
    result = tus_js_upload(
        f"{server.url}/files/", source, parallel, 2 * MiB, TUS_AUTHORIZATION=f"Bearer {alice}"
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().splitlines()[-1]
    download = requests.get(url, headers={"Authorization": f"Bearer {alice}"}, timeout=60)
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(source.read_bytes()).digest()
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {bob}"}, timeout=10).status_code == 404
    )
    listed = requests.get(
        f"{server.url}/api/uploads", headers={"Authorization": f"Bearer {alice}"}, timeout=10
    ).json()
    assert listed["total"] == 1 and listed["uploads"][0]["owner"] == "alice"
