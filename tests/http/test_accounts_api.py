"""Accounts through the JSON API: login and sessions, tokens, users, quotas, security events."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from tests.support.accounts import PASSWORD, accounts_of, add_token, add_user, bearer
from tests.support.redis_cluster import kill_pubsub_connections
from tests.support.tus import TUS, create, patch, upload_id

ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def app(make_app: Any) -> Flask:
    app = make_app(auth="required")
    add_user(app, "root", "admin")
    add_user(app, "alice")
    add_user(app, "bob")
    return app


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return bearer(add_token(app, "root"))


@pytest.fixture
def alice(app: Flask) -> dict[str, str]:
    return bearer(add_token(app, "alice"))


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    return client.post("/api/session", json={"name": name, "password": password}, headers=ORIGIN)


# -- sessions --------------------------------------------------------------------------------
def test_login_sets_a_safe_session_cookie_and_me_answers(app: Flask) -> None:
    client = app.test_client()
    response = login(client, "alice")
    assert response.status_code == 200
    assert response.get_json() == {"name": "alice", "role": "user"}
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("tusserver_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here

    me = client.get("/api/me")
    assert me.status_code == 200
    assert me.get_json() == {
        "name": "alice",
        "role": "user",
        "usage": 0,
        "quota": None,
        "auth": "required",
    }


def test_the_cookie_is_secure_over_https(app: Flask) -> None:
    client = app.test_client()
    response = client.post(
        "/api/session",
        json={"name": "alice", "password": PASSWORD},
        base_url="https://localhost",
        headers={"Origin": "https://localhost"},
    )
    assert response.status_code == 200
    assert "Secure" in response.headers["Set-Cookie"]


def test_wrong_name_and_wrong_password_look_the_same(app: Flask) -> None:
    client = app.test_client()
    wrong_password = login(client, "alice", "not the password")
    wrong_name = login(client, "nobody", PASSWORD)
    assert wrong_password.status_code == wrong_name.status_code == 401
    assert wrong_password.get_json() == wrong_name.get_json()
    assert "Set-Cookie" not in wrong_password.headers
    assert wrong_password.headers["WWW-Authenticate"].startswith("Bearer")


def test_failed_logins_are_rate_limited_per_name(app: Flask) -> None:
    client = app.test_client()
    for _ in range(5):
        assert login(client, "alice", "guess").status_code == 401
    limited = login(client, "alice", PASSWORD)  # even the right password, while limited
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert login(client, "bob").status_code == 200  # another name is not affected


def test_failed_logins_are_rate_limited_per_address(app: Flask) -> None:
    client = app.test_client()
    for index in range(30):
        assert login(client, f"spray{index}", "guess").status_code == 401
    assert login(client, "bob").status_code == 429
    other_address = client.post(
        "/api/session",
        json={"name": "bob", "password": PASSWORD},
        headers=ORIGIN,
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert other_address.status_code == 200


def test_logout_ends_the_session_server_side(app: Flask) -> None:
    client = app.test_client()
    login(client, "alice")
    cookie = client.get_cookie("tusserver_session").value
    assert client.delete("/api/session", headers=ORIGIN).status_code == 204
    stranger = app.test_client(use_cookies=False)
    replayed = stranger.get("/api/me", headers={"Cookie": f"tusserver_session={cookie}"})
    assert replayed.status_code == 401


def test_a_password_change_ends_sessions_but_not_tokens(app: Flask, admin: Any) -> None:
    client = app.test_client()
    login(client, "alice")
    token = bearer(add_token(app, "alice"))
    changed = client.patch("/api/users/alice", json={"password": "a new password"}, headers=admin)
    assert changed.status_code == 200
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=token).status_code == 200
    assert login(app.test_client(), "alice", "a new password").status_code == 200


def test_disabling_a_user_refuses_its_sessions_and_tokens_at_once(app: Flask, admin: Any) -> None:
    client = app.test_client()
    login(client, "alice")
    token = bearer(add_token(app, "alice"))
    assert (
        client.patch("/api/users/alice", json={"disabled": True}, headers=admin).status_code == 200
    )
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=token).status_code == 401
    assert login(app.test_client(), "alice").status_code == 401
    client.patch("/api/users/alice", json={"disabled": False}, headers=admin)
    assert client.get("/api/me", headers=token).status_code == 200


def test_cookie_writes_need_our_origin(app: Flask) -> None:
    client = app.test_client()
    login(client, "alice")
    assert client.post("/api/tokens", json={"label": "x"}).status_code == 403
    evil = {"Origin": "http://evil.example"}
    assert client.post("/api/tokens", json={"label": "x"}, headers=evil).status_code == 403
    assert client.post("/api/tokens", json={"label": "x"}, headers=ORIGIN).status_code == 201


def test_cookie_writes_from_an_allowed_cors_origin(make_app: Any) -> None:
    app = make_app(auth="required", cors_origins=("https://app.example",))
    add_user(app, "alice")
    client = app.test_client()
    login(client, "alice")
    allowed = {"Origin": "https://app.example"}
    assert client.post("/api/tokens", json={"label": "x"}, headers=allowed).status_code == 201


# -- tokens ----------------------------------------------------------------------------------
def test_tokens_are_shown_once_listed_without_secret_and_revoked(app: Flask, alice: Any) -> None:
    client = app.test_client()
    made = client.post("/api/tokens", json={"label": "laptop", "expires_in": 3600}, headers=alice)
    assert made.status_code == 201
    body = made.get_json()
    assert body["token"].startswith("tus_") and len(body["token"]) > 40
    assert body["owner"] == "alice" and body["label"] == "laptop" and body["expires"]
    fresh = bearer(body["token"])
    assert client.get("/api/me", headers=fresh).get_json()["name"] == "alice"

    listed = client.get("/api/tokens", headers=alice).get_json()["tokens"]
    mine = next(t for t in listed if t["id"] == body["id"])
    assert "token" not in mine and mine["last_used"] is not None
    assert all(body["token"] not in str(t) for t in listed)

    assert client.delete(f"/api/tokens/{body['id']}", headers=alice).status_code == 204
    refused = client.get("/api/me", headers=fresh)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_another_users_token_is_404_and_admins_manage_all(
    app: Flask, alice: Any, admin: Any
) -> None:
    client = app.test_client()
    bob = bearer(add_token(app, "bob"))
    made = client.post("/api/tokens", json={"label": "a"}, headers=alice).get_json()
    assert client.delete(f"/api/tokens/{made['id']}", headers=bob).status_code == 404
    assert client.get("/api/tokens?owner=alice", headers=bob).status_code == 403
    assert client.get("/api/tokens?owner=alice", headers=admin).status_code == 200
    for_bob = client.post("/api/tokens", json={"label": "b", "owner": "bob"}, headers=admin)
    assert for_bob.status_code == 201 and for_bob.get_json()["owner"] == "bob"
    assert client.delete(f"/api/tokens/{made['id']}", headers=admin).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"label": 5},
        {"label": "x" * 101},
        {"label": "a\nb"},
        {"expires_in": "soon"},
        {"expires_in": -1},
        {"expires_in": True},
        {"owner": ["x"]},
    ],
)
def test_bad_token_requests_are_400(app: Flask, alice: Any, body: Any) -> None:
    response = app.test_client().post("/api/tokens", json=body, headers=alice)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad-request"


# -- users -----------------------------------------------------------------------------------
def test_admins_create_list_change_and_remove_users(app: Flask, admin: Any) -> None:
    client = app.test_client()
    made = client.post(
        "/api/users",
        json={"name": "dave", "password": "dave's password", "quota": 1000},
        headers=admin,
    )
    assert made.status_code == 201
    assert made.get_json()["quota"] == 1000 and made.get_json()["role"] == "user"
    assert (
        client.post(
            "/api/users", json={"name": "dave", "password": "whatever123"}, headers=admin
        ).status_code
        == 409
    )
    names = {u["name"] for u in client.get("/api/users", headers=admin).get_json()["users"]}
    assert names == {"root", "alice", "bob", "dave"}

    dave = bearer(add_token(app, "dave"))
    assert client.get("/api/users", headers=dave).status_code == 403
    promoted = client.patch("/api/users/dave", json={"role": "admin"}, headers=admin)
    assert promoted.get_json()["role"] == "admin"
    assert client.get("/api/users", headers=dave).status_code == 200  # on its next request

    assert client.delete("/api/users/dave", headers=admin).status_code == 204
    assert client.get("/api/me", headers=dave).status_code == 401
    assert client.delete("/api/users/dave", headers=admin).status_code == 404


def test_removing_a_user_with_its_uploads(app: Flask, admin: Any, alice: Any) -> None:
    client = app.test_client()
    kept = create(client, 3, alice)
    assert client.delete("/api/users/alice?delete_uploads=true", headers=admin).status_code == 204
    assert client.get(f"/api/uploads/{upload_id(kept)}", headers=admin).status_code == 410


@pytest.mark.parametrize(
    "body",
    [
        {"name": "has space", "password": "long enough"},
        {"name": "ok", "password": "short"},
        {"name": "ok", "password": "long enough", "role": "root"},
        {"name": "ok", "password": "long enough", "quota": -1},
        {"name": "{tag}", "password": "long enough"},
        {"name": 3, "password": "long enough"},
    ],
)
def test_bad_user_requests_are_400(app: Flask, admin: Any, body: Any) -> None:
    response = app.test_client().post("/api/users", json=body, headers=admin)
    assert response.status_code == 400


def test_an_admin_cannot_lock_itself_out(app: Flask, admin: Any) -> None:
    client = app.test_client()
    assert (
        client.patch("/api/users/root", json={"disabled": True}, headers=admin).status_code == 403
    )
    assert client.patch("/api/users/root", json={"role": "user"}, headers=admin).status_code == 403
    assert client.delete("/api/users/root", headers=admin).status_code == 403


# -- quotas ----------------------------------------------------------------------------------
def test_quota_counts_bytes_held_and_says_what_is_left(make_app: Any) -> None:
    app = make_app(auth="required", default_quota=100)
    add_user(app, "alice")
    add_user(app, "root", "admin")
    alice = bearer(add_token(app, "alice"))
    client = app.test_client()

    first = create(client, 60, alice)
    over = client.post("/files/", headers={**TUS, "Upload-Length": "50", **alice})
    assert over.status_code == 413
    assert "40 bytes left" in over.get_data(as_text=True)

    deferred = create(client, None, alice)
    declared = patch(client, deferred, 0, b"x" * 10, **alice, Upload_Length="41")
    assert declared.status_code == 413
    assert client.head(deferred, headers={**TUS, **alice}).headers.get("Upload-Length") is None
    assert patch(client, deferred, 0, b"x" * 10, **alice, Upload_Length="40").status_code == 204
    assert client.get("/api/me", headers=alice).get_json()["usage"] == 100

    assert client.delete(first, headers={**TUS, **alice}).status_code == 204
    me = client.get("/api/me", headers=alice).get_json()
    assert (me["usage"], me["quota"]) == (40, 100)

    admin = bearer(add_token(app, "root"))
    assert (
        client.post("/files/", headers={**TUS, "Upload-Length": "1000", **admin}).status_code == 201
    )


def test_partial_uploads_count_and_their_final_does_not_count_twice(make_app: Any) -> None:
    app = make_app(auth="required", default_quota=100)
    add_user(app, "alice")
    alice = bearer(add_token(app, "alice"))
    client = app.test_client()
    parts = []
    for _ in range(2):
        part = create(client, 30, {**alice, "Upload-Concat": "partial"})
        assert patch(client, part, 0, b"p" * 30, **alice).status_code == 204
        parts.append(part)
    final = client.post(
        "/files/", headers={**TUS, **alice, "Upload-Concat": "final;" + " ".join(parts)}
    )
    assert final.status_code == 201
    assert client.get("/api/me", headers=alice).get_json()["usage"] == 60
    client.delete(final.headers["Location"], headers={**TUS, **alice})
    assert client.get("/api/me", headers=alice).get_json()["usage"] == 0


def test_a_per_user_quota_overrides_the_default(make_app: Any) -> None:
    app = make_app(auth="required", default_quota=100)
    add_user(app, "alice", quota=10)
    add_user(app, "bob", quota=0)  # 0: no limit
    client = app.test_client()
    alice, bob = bearer(add_token(app, "alice")), bearer(add_token(app, "bob"))
    assert (
        client.post("/files/", headers={**TUS, "Upload-Length": "11", **alice}).status_code == 413
    )
    assert client.post("/files/", headers={**TUS, "Upload-Length": "500", **bob}).status_code == 201


# -- open mode, events -----------------------------------------------------------------------
def test_open_mode_acts_as_one_admin(make_app: Any) -> None:
    client = make_app(auth="none").test_client()
    me = client.get("/api/me").get_json()
    assert me["auth"] == "none" and me["role"] == "admin"
    path = create(client, 1)
    listed = client.get("/api/uploads").get_json()["uploads"]
    assert [u["id"] for u in listed] == [upload_id(path)]


def test_security_events_never_hold_secrets(
    app: Flask, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    with caplog.at_level(logging.INFO, logger="tusserver.security"):
        login(client, "alice", "wrong password!")
        login(client, "alice")
        cookie = client.get_cookie("tusserver_session").value
        token = client.post("/api/tokens", json={"label": "t"}, headers=alice).get_json()["token"]
    text = caplog.text
    for event in ('"event": "login-failed"', '"event": "login"', '"event": "token-created"'):
        assert event in text
    assert "request_id" in text
    for secret in (PASSWORD, "wrong password!", cookie, token):
        assert secret not in text


# -- two apps on one Redis (each with its own credential cache) ------------------------------
def test_changes_on_one_server_hold_on_another_at_once(make_app: Any) -> None:
    """Each server caches credentials it has checked; a change made elsewhere clears them."""
    first, second = make_app(auth="required"), make_app(auth="required")  # same Redis prefix
    add_user(first, "root", "admin")
    add_user(first, "alice")
    admin = bearer(add_token(first, "root"))
    token = add_token(first, "alice")
    other = bearer(add_token(first, "alice"))
    one, two = first.test_client(), second.test_client()
    for _ in range(3):  # cached on the second server now
        assert two.get("/api/me", headers=bearer(token)).get_json()["role"] == "user"

    promoted = one.patch("/api/users/alice", json={"role": "admin"}, headers=admin)
    assert promoted.status_code == 200
    assert two.get("/api/me", headers=bearer(token)).get_json()["role"] == "admin"

    token_id = accounts_of(first).resolve_token(token).token_id
    assert one.delete(f"/api/tokens/{token_id}", headers=admin).status_code == 204
    assert two.get("/api/me", headers=bearer(token)).status_code == 401

    assert two.get("/api/me", headers=other).status_code == 200
    one.patch("/api/users/alice", json={"disabled": True}, headers=admin)
    assert two.get("/api/me", headers=other).status_code == 401


def test_a_lost_invalidation_channel_turns_the_cache_off(app: Flask, redis_client: Any) -> None:
    """If the channel's connection dies, changes published meanwhile are missed: the cache must
    not be trusted again until it is subscribed anew."""
    client = app.test_client()
    token = add_token(app, "alice")
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # cached
    kill_pubsub_connections(redis_client)
    accounts = accounts_of(app)
    elsewhere = type(accounts.store)(redis_client, accounts.store.prefix, cache=False)
    elsewhere._invalidate = lambda: None  # its message is lost with the connection
    elsewhere.revoke_token(next(t.id for t in elsewhere.list_tokens("alice")))
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


# -- JWTs from an identity provider ----------------------------------------------------------
JWT_SECRET = "an HS256 secret of at least 32 characters"


def _jwt(sub: str, **claims: Any) -> dict[str, str]:
    import time

    import jwt

    payload = {"sub": sub, "aud": "tusserver", "exp": int(time.time()) + 60, **claims}
    return bearer(jwt.encode(payload, JWT_SECRET, algorithm="HS256"))


def test_a_jwt_subject_becomes_a_user_on_first_use(make_app: Any) -> None:
    app = make_app(auth="required", jwt_secret=JWT_SECRET, jwt_audience="tusserver")
    client = app.test_client()
    me = client.get("/api/me", headers=_jwt("carol@example.com"))
    assert me.status_code == 200
    assert me.get_json()["name"] == "carol@example.com" and me.get_json()["role"] == "user"
    assert accounts_of(app).get_user("carol@example.com").password_hash == ""
    path = create(client, 3, _jwt("carol@example.com"))
    assert client.head(path, headers={**TUS, **_jwt("dave")}).status_code == 404

    accounts_of(app).update_user("carol@example.com", disabled=True)
    assert client.get("/api/me", headers=_jwt("carol@example.com")).status_code == 401
    assert client.get("/api/me", headers=_jwt("not a name")).status_code == 401
    wrong_audience = _jwt("carol", aud="someone-else")
    assert client.get("/api/me", headers=wrong_audience).status_code == 401


def test_a_jwt_role_claim_makes_an_admin(make_app: Any) -> None:
    app = make_app(
        auth="required", jwt_secret=JWT_SECRET, jwt_audience="tusserver", jwt_role_claim="roles"
    )
    client = app.test_client()
    assert client.get("/api/users", headers=_jwt("boss", roles=["admin"])).status_code == 200
    assert client.get("/api/users", headers=_jwt("boss", roles=[])).status_code == 403


def test_admins_filter_the_listing_by_owner(app: Flask, admin: Any, alice: Any) -> None:
    client = app.test_client()
    bob = bearer(add_token(app, "bob"))
    mine = {upload_id(create(client, 1, alice)) for _ in range(2)}
    create(client, 1, bob)
    listed = client.get("/api/uploads?owner=alice&limit=1", headers=admin).get_json()
    assert listed["total"] == 2 and "owner=alice" in listed["next"]
    both = client.get("/api/uploads?owner=alice", headers=admin).get_json()["uploads"]
    assert {u["id"] for u in both} == mine
    assert client.get("/api/uploads", headers=admin).get_json()["total"] == 3
    # A user's filter cannot widen its view: it always sees its own.
    assert client.get("/api/uploads?owner=alice", headers=bob).get_json()["total"] == 1
    assert client.get("/api/uploads?owner=bad%20name", headers=admin).status_code == 400
