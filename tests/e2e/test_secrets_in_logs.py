"""No log line ever holds a password, token, cookie, grant or link signature.

A real server (gunicorn, accounts on, DEBUG logging) gets real traffic: failed and good logins,
user and token creation, tus uploads with a bearer token, a signed link used and tampered with,
an upload grant used, a token revoked and reused, a logout. Then every byte the server wrote to
its console and log is searched for each secret it saw.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from tests.support.live import live_server

ADMIN_PASSWORD = "admin-password-Zq81-never-logged"
WRONG_PASSWORD = "wrong-password-Kx20-never-logged"
ALICE_PASSWORD = "alice-password-Mv33-never-logged"
TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def test_real_traffic_leaves_no_secret_in_the_logs(tmp_path: Path, redis_url: str) -> None:
    env = {
        "TUSSERVER_AUTH": "required",
        "TUSSERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TUSSERVER_LOG_LEVEL": "DEBUG",
    }
    secrets: dict[str, str] = {
        "admin password": ADMIN_PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "alice password": ALICE_PASSWORD,
    }
    with live_server(tmp_path / "data", redis_url, env=env, workers=1) as server:
        url = server.url
        origin = {"Origin": url}

        assert (
            requests.post(
                f"{url}/api/session", json={"name": "admin", "password": WRONG_PASSWORD}, timeout=10
            ).status_code
            == 401
        )
        admin = requests.Session()
        login = admin.post(
            f"{url}/api/session", json={"name": "admin", "password": ADMIN_PASSWORD}, timeout=10
        )
        assert login.status_code == 200
        secrets["admin cookie"] = admin.cookies["tusserver_session"]
        created = admin.post(
            f"{url}/api/users",
            json={"name": "alice", "password": ALICE_PASSWORD},
            headers=origin,
            timeout=10,
        )
        assert created.status_code == 201

        alice = requests.Session()
        assert (
            alice.post(
                f"{url}/api/session", json={"name": "alice", "password": ALICE_PASSWORD}, timeout=10
            ).status_code
            == 200
        )
        secrets["alice cookie"] = alice.cookies["tusserver_session"]
        issued = alice.post(
            f"{url}/api/tokens", json={"label": "script"}, headers=origin, timeout=10
        ).json()
        token = secrets["api token"] = issued["token"]
        bearer = {"Authorization": f"Bearer {token}"}

        # A tus upload with the token.
        post = requests.post(
            f"{url}/files/", headers={**TUS, **bearer, "Upload-Length": "11"}, timeout=10
        )
        assert post.status_code == 201
        location = post.headers["Location"]
        patched = requests.patch(
            location,
            data=b"hello world",
            headers={**TUS, **OCTET, **bearer, "Upload-Offset": "0"},
            timeout=10,
        )
        assert patched.status_code == 204
        upload_id = location.rstrip("/").rsplit("/", 1)[-1]

        # A signed link: made, used without credentials, tampered with.
        link = requests.post(
            f"{url}/api/uploads/{upload_id}/links",
            json={"expires_in": 300},
            headers=bearer,
            timeout=10,
        ).json()["url"]
        signature = secrets["link signature"] = parse_qs(urlsplit(link).query)["signature"][0]
        assert requests.get(link, timeout=10).content == b"hello world"
        assert requests.get(link.replace(signature, signature[::-1]), timeout=10).status_code == 403

        # An upload grant, used by someone with no account.
        grant = requests.post(
            f"{url}/api/grants",
            json={"max_size": 100, "expires_in": 300, "uploads": 1},
            headers=bearer,
            timeout=10,
        ).json()["grant"]
        secrets["grant"] = grant
        granted = requests.post(
            f"{url}/files/",
            headers={**TUS, "Authorization": f"Bearer {grant}", "Upload-Length": "3"},
            timeout=10,
        )
        assert granted.status_code == 201

        # A revoked token, then a logout.
        assert (
            alice.delete(f"{url}/api/tokens/{issued['id']}", headers=origin, timeout=10).status_code
            == 204
        )
        assert requests.get(f"{url}/api/me", headers=bearer, timeout=10).status_code == 401
        assert alice.delete(f"{url}/api/session", headers=origin, timeout=10).status_code == 204
        log = server.log()

    # The signing key was generated once, readable by the server's user only.
    assert stat.S_IMODE((tmp_path / "data" / "secret_key").stat().st_mode) == 0o600

    events = [json.loads(line[line.index("{") :]) for line in log.splitlines() if '"event"' in line]
    kinds = {event["event"] for event in events}
    assert {"link-created", "grant-created"} <= kinds, sorted(kinds)
    assert all(event.get("request_id") for event in events if event["event"] == "link-created")
    for name, secret in secrets.items():
        # The whole value, and any long piece of it (a truncated or partly masked value leaks too).
        pieces = {secret, *(secret[i : i + 16] for i in range(0, max(len(secret) - 16, 0) + 1, 8))}
        leaked = [piece for piece in pieces if piece in log]
        assert not leaked, f"the {name} appears in the server's log"
