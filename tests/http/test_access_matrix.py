"""The access matrix: every route crossed with every kind of principal, on both stores.

Each case builds a small world (alice's uploads, one of bob's, one made with alice's grant),
sends one request as one principal, and checks the status; whenever the answer is a refusal it
also checks that nothing changed (offsets, names, which uploads exist, their bytes).

Principals: anonymous, the owner by token, the owner by session cookie (same origin), the owner
by cookie from another site or without Origin (CSRF), another user, an admin, a disabled user,
an expired token, a revoked token, an upload grant, and a signed link's signature used for a
different upload; and one column per token scope: alice's token with only `upload`, only `read`,
only `manage`, and the admin's token with only `admin`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.support.accounts import (
    PASSWORD,
    accounts_of,
    add_token,
    add_user,
    bearer,
    cookie_headers,
    session_cookie,
)
from tests.support.tus import OCTET, TUS, create, patch, upload_id
from tusserver.auth.principal import Grant
from tusserver.auth.signed import issue_grant

HELLO = b"hello"


@dataclass
class World:
    app: Flask
    client: Any
    admin: dict[str, str]
    U: str  # alice: complete
    P: str  # alice: incomplete (3 of 10 bytes)
    Q: str  # alice: complete partial upload (for concatenation)
    G: str  # made with alice's grant: incomplete (0 of 10)
    B: str  # bob: complete
    link: str  # a signed link to U (path?query)
    spare_token: str = ""  # the id of a token of alice's that no principal uses
    principals: dict[str, dict[str, str]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """What a refused request must not change."""
        state = self.app.extensions["tusserver"].state
        seen: dict[str, Any] = {}
        for name in ("U", "P", "Q", "G", "B"):
            info = state.get(upload_id(getattr(self, name)))
            seen[name] = None if info is None else (info.offset, info.length, info.metadata)
        seen["listed"] = self.client.get("/api/uploads", headers=self.admin).get_json()["total"]
        seen["U-bytes"] = self.client.get(self.U, headers=self.admin).data
        accounts = accounts_of(self.app)
        seen["users"] = sorted(
            (u.name, u.role, u.disabled, u.quota) for u, _ in accounts.list_users()
        )
        seen["tokens"] = sorted(
            t.id for name in ("alice", "bob") for t in accounts.list_tokens(name)
        )
        seen["link"] = self.client.get(self.link).status_code
        return seen


def build_world(app: Flask) -> World:
    client = app.test_client(use_cookies=False)  # cookies go in headers, per principal
    for name, role in (("alice", "user"), ("bob", "user"), ("root", "admin"), ("carol", "user")):
        add_user(app, name, role)
    alice, bob, root = add_token(app, "alice"), add_token(app, "bob"), add_token(app, "root")
    carol = add_token(app, "carol")
    accounts_of(app).update_user("carol", disabled=True)
    expired = add_token(app, "alice", expires=time.time() - 10)
    revoked = add_token(app, "alice")
    revoked_id = accounts_of(app).resolve_token(revoked).token_id
    accounts_of(app).revoke_token(revoked_id)
    grant = issue_grant(
        app.extensions["tusserver"].secret_key,
        Grant("g1", "alice", max_size=100, uploads=5, expires=time.time() + 600),
    )
    cookie = session_cookie(app, "alice")

    as_alice = bearer(alice)
    u = create(client, len(HELLO), as_alice, filename="u.txt")
    assert patch(client, u, 0, HELLO, **as_alice).status_code == 204
    p = create(client, 10, as_alice, filename="p.bin")
    assert patch(client, p, 0, b"abc", **as_alice).status_code == 204
    q = create(client, 2, {**as_alice, "Upload-Concat": "partial"})
    assert patch(client, q, 0, b"qq", **as_alice).status_code == 204
    g = create(client, 10, bearer(grant))
    b = create(client, 2, bearer(bob), filename="b.txt")
    assert patch(client, b, 0, b"bb", **bearer(bob)).status_code == 204
    made = client.post(
        f"/api/uploads/{upload_id(u)}/links", json={"expires_in": 600}, headers=as_alice
    )
    assert made.status_code == 201
    parts = urlsplit(made.get_json()["url"])
    world = World(app, client, bearer(root), u, p, q, g, b, f"{parts.path}?{parts.query}")
    world.spare_token = accounts_of(app).resolve_token(add_token(app, "alice")).token_id
    world.principals = {
        "anonymous": {},
        "owner": as_alice,
        "owner-cookie": cookie_headers(cookie),
        "cross-site-cookie": cookie_headers(cookie, origin="http://evil.example"),
        "cookie-without-origin": cookie_headers(cookie, origin=None),
        "other-user": bearer(bob),
        "admin": bearer(root),
        "disabled-user": bearer(carol),
        "expired-token": bearer(expired),
        "revoked-token": bearer(revoked),
        "grant": bearer(grant),
        "link-elsewhere": {},
    }
    for column, (owner, scope) in SCOPE_COLUMNS.items():
        token = add_token(app, owner, scopes=frozenset({scope}))
        world.principals[column] = bearer(token)
    return world


Send = Callable[[World, dict[str, str]], Any]


def _req(method: str, path: Callable[[World], str], **kw: Any) -> Send:
    def send(world: World, headers: dict[str, str]) -> Any:
        sent = {**kw.get("headers", {}), **headers}
        return world.client.open(path(world), method=method, headers=sent, **kw.get("extra", {}))

    return send


def _link_for(target: str) -> Callable[[World], str]:
    """U's signature and expiry on the link route of another upload."""
    return lambda w: "/links/" + upload_id(getattr(w, target)) + "?" + w.link.split("?")[1]


PATCH_P = {"headers": {**TUS, **OCTET, "Upload-Offset": "3"}, "extra": {"data": b"XYZ"}}
PATCH_G = {"headers": {**TUS, **OCTET, "Upload-Offset": "0"}, "extra": {"data": b"XYZ"}}
CREATE = {"headers": {**TUS, "Upload-Length": "5"}}
RENAME = {"extra": {"json": {"filename": "renamed.txt"}}}
OVERRIDE_DELETE = {"headers": {**TUS, "X-HTTP-Method-Override": "DELETE"}}
LINK = {"extra": {"json": {"expires_in": 60}}}
GRANT = {"extra": {"json": {"max_size": 10, "expires_in": 60, "uploads": 1}}}
TOKEN = {"extra": {"json": {"label": "matrix"}}}
NEW_USER = {"extra": {"json": {"name": "eve", "password": "long enough password"}}}
QUOTA = {"extra": {"json": {"quota": 5}}}
LOGIN = {"extra": {"json": {"name": "alice", "password": PASSWORD}}}

JSON_FILE = {"extra": {"json": {"filename": "j.txt", "text": "hello"}}}

ROUTES: dict[str, Send] = {
    "OPTIONS /files/": _req("OPTIONS", lambda w: "/files/"),
    "POST /api/files": _req("POST", lambda w: "/api/files", **JSON_FILE),
    "GET /api/uploads/U/content": _req("GET", lambda w: f"/api/uploads/{upload_id(w.U)}/content"),
    "POST /files/": _req("POST", lambda w: "/files/", **CREATE),
    "HEAD /files/P": _req("HEAD", lambda w: w.P, headers=TUS),
    "PATCH /files/P": _req("PATCH", lambda w: w.P, **PATCH_P),
    "DELETE /files/P": _req("DELETE", lambda w: w.P, headers=TUS),
    "POST+override DELETE /files/P": _req("POST", lambda w: w.P, **OVERRIDE_DELETE),
    "GET /files/U": _req("GET", lambda w: w.U),
    "HEAD /files/U (download)": _req("HEAD", lambda w: w.U),
    "POST /files/ final of Q": _req(
        "POST",
        lambda w: "/files/",
        headers={**TUS, "Upload-Concat": "final;/files/"},
    ),
    "HEAD /files/G": _req("HEAD", lambda w: w.G, headers=TUS),
    "PATCH /files/G": _req("PATCH", lambda w: w.G, **PATCH_G),
    "DELETE /files/G": _req("DELETE", lambda w: w.G, headers=TUS),
    "GET /api/uploads": _req("GET", lambda w: "/api/uploads"),
    "GET /api/uploads/U": _req("GET", lambda w: f"/api/uploads/{upload_id(w.U)}"),
    "PATCH /api/uploads/U": _req("PATCH", lambda w: f"/api/uploads/{upload_id(w.U)}", **RENAME),
    "DELETE /api/uploads/U": _req("DELETE", lambda w: f"/api/uploads/{upload_id(w.U)}"),
    "POST /api/uploads/U/links": _req(
        "POST", lambda w: f"/api/uploads/{upload_id(w.U)}/links", **LINK
    ),
    "DELETE /api/uploads/U/links": _req("DELETE", lambda w: f"/api/uploads/{upload_id(w.U)}/links"),
    "POST /api/grants": _req("POST", lambda w: "/api/grants", **GRANT),
    "POST /api/tokens": _req("POST", lambda w: "/api/tokens", **TOKEN),
    "DELETE /api/tokens/<alice's>": _req("DELETE", lambda w: f"/api/tokens/{w.spare_token}"),
    "POST /api/users": _req("POST", lambda w: "/api/users", **NEW_USER),
    "PATCH /api/users/bob": _req("PATCH", lambda w: "/api/users/bob", **QUOTA),
    "DELETE /api/users/bob": _req("DELETE", lambda w: "/api/users/bob"),
    "POST /api/session": _req("POST", lambda w: "/api/session", **LOGIN),
    "DELETE /api/session": _req("DELETE", lambda w: "/api/session"),
    "GET /links/U (signed)": _req("GET", lambda w: w.link),
    "GET /links/B (U's signature)": _req("GET", _link_for("B")),
    "GET /metrics": _req("GET", lambda w: "/metrics"),
    "GET /api/health": _req("GET", lambda w: "/api/health"),
    "GET /api/me": _req("GET", lambda w: "/api/me"),
    "GET /api/tokens": _req("GET", lambda w: "/api/tokens"),
    "GET /api/users": _req("GET", lambda w: "/api/users"),
    "GET /": _req("GET", lambda w: "/"),
    "GET /api/openapi.json": _req("GET", lambda w: "/api/openapi.json"),
    "GET /api/events": _req("GET", lambda w: "/api/events"),  # the stream is left unread
}

OWNERS = ("owner", "owner-cookie", "admin")
READ_ONLY = {
    "GET /api/uploads/U/content",
    "HEAD /files/P",
    "GET /files/U",
    "HEAD /files/U (download)",
    "HEAD /files/G",
    "GET /api/uploads",
    "GET /api/uploads/U",
    "GET /links/U (signed)",
    "GET /api/me",
    "GET /api/tokens",
    "GET /api/users",
    "GET /api/health",
    "GET /api/events",
}
BAD_CREDENTIALS = ("disabled-user", "expired-token", "revoked-token")
CSRF = ("cross-site-cookie", "cookie-without-origin")
STATE_CHANGING = {"POST", "PATCH", "DELETE"}

PUBLIC = {
    "GET /links/U (signed)",
    "GET /api/health",
    "GET /",
    "GET /api/openapi.json",
    "POST /api/session",
    "DELETE /api/session",
}
ADMIN_ONLY = {
    "GET /metrics",
    "GET /api/users",
    "POST /api/users",
    "PATCH /api/users/bob",
    "DELETE /api/users/bob",
}

# Per route: the status for owners (owner, owner-cookie, admin), another user, and a grant.
# None = "as anonymous" (401).
TABLE: dict[str, tuple[int, int, int | None]] = {
    "POST /files/": (201, 201, 201),
    "POST /api/files": (201, 201, 201),
    "GET /api/uploads/U/content": (200, 404, None),
    "HEAD /files/P": (200, 404, 404),
    "PATCH /files/P": (204, 404, 404),
    "DELETE /files/P": (204, 404, 404),
    "POST+override DELETE /files/P": (204, 404, 404),
    "GET /files/U": (200, 404, 404),
    "HEAD /files/U (download)": (200, 404, 404),
    "POST /files/ final of Q": (201, 400, 400),
    "HEAD /files/G": (200, 404, 200),
    "PATCH /files/G": (204, 404, 204),
    "DELETE /files/G": (204, 404, 204),
    "GET /api/uploads": (200, 200, None),
    "GET /api/uploads/U": (200, 404, None),
    "PATCH /api/uploads/U": (200, 404, None),
    "DELETE /api/uploads/U": (204, 404, None),
    "POST /api/uploads/U/links": (201, 404, None),
    "DELETE /api/uploads/U/links": (204, 404, None),
    "POST /api/grants": (201, 201, None),
    "POST /api/tokens": (201, 201, None),
    "DELETE /api/tokens/<alice's>": (204, 404, None),
    "POST /api/users": (201, 403, None),
    "PATCH /api/users/bob": (200, 403, None),
    "DELETE /api/users/bob": (204, 403, None),
    "POST /api/session": (200, 200, None),
    "DELETE /api/session": (204, 204, None),
    "GET /links/U (signed)": (200, 200, None),
    "GET /links/B (U's signature)": (403, 403, None),
    "GET /metrics": (200, 403, None),
    "GET /api/health": (200, 200, None),
    "GET /api/me": (200, 200, None),
    "GET /api/tokens": (200, 200, None),
    "GET /api/users": (200, 403, None),
    "GET /": (200, 200, None),
    "GET /api/openapi.json": (200, 200, None),
    "GET /api/events": (200, 200, None),
}


SCOPE_COLUMNS: dict[str, tuple[str, str]] = {
    "scope-upload": ("alice", "upload"),
    "scope-read": ("alice", "read"),
    "scope-manage": ("alice", "manage"),
    "scope-admin": ("root", "admin"),
}
"""Column -> (whose token, its only scope)."""

ROUTE_SCOPES: dict[str, set[str]] = {
    "POST /files/": {"upload"},
    "POST /api/files": {"upload"},
    "HEAD /files/P": {"upload", "read"},
    "PATCH /files/P": {"upload"},
    "DELETE /files/P": {"manage"},
    "POST+override DELETE /files/P": {"manage"},
    "GET /files/U": {"read"},
    "HEAD /files/U (download)": {"read"},
    "GET /api/uploads/U/content": {"read"},
    "POST /files/ final of Q": {"upload"},
    "HEAD /files/G": {"upload", "read"},
    "PATCH /files/G": {"upload"},
    "DELETE /files/G": {"manage"},
    "GET /api/uploads": {"read"},
    "GET /api/uploads/U": {"upload", "read"},
    "PATCH /api/uploads/U": {"manage"},
    "DELETE /api/uploads/U": {"manage"},
    "POST /api/uploads/U/links": {"manage"},
    "DELETE /api/uploads/U/links": {"manage"},
    "POST /api/grants": {"upload"},
    "GET /api/events": {"read"},
}
"""Route -> the scopes any one of which a token needs (routes not named need none; the users
routes and /metrics need `admin`, through the admin role a token keeps only with that scope)."""


def expected(route: str, principal: str) -> int:
    if route == "OPTIONS /files/":
        return 204
    if principal in SCOPE_COLUMNS:
        owner, scope = SCOPE_COLUMNS[principal]
        status = expected(route, "owner" if owner == "alice" else "admin")
        if status < 400 and scope not in ROUTE_SCOPES.get(route, {scope}):
            return 403
        return status
    method = route.split()[0].split("+")[0]
    if principal in BAD_CREDENTIALS:
        return 401
    if principal in ("anonymous", "link-elsewhere"):
        if route == "GET /links/B (U's signature)":
            return 403
        return TABLE[route][0] if route in PUBLIC else 401
    owners, other, grant = TABLE[route]
    if principal == "grant":
        if grant is None:  # a grant is only good for tus requests
            return 401
        return grant
    if principal in CSRF:
        if method in STATE_CHANGING:  # the override rides on a POST
            return 403
        principal = "owner-cookie"  # reading needs no proof of origin
    if principal == "other-user":
        return other
    if principal in ("owner", "owner-cookie") and route in ADMIN_ONLY:
        return 403
    return owners


PRINCIPALS = [
    "anonymous",
    "owner",
    "owner-cookie",
    "cross-site-cookie",
    "cookie-without-origin",
    "other-user",
    "admin",
    "disabled-user",
    "expired-token",
    "revoked-token",
    "grant",
    "link-elsewhere",
]
"""The scope columns (SCOPE_COLUMNS) run in test_access_matrix_scopes.py, on one store."""


@pytest.fixture
def world(make_app: Any) -> World:
    return build_world(make_app(auth="required", metrics_enabled=True))


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("route", list(ROUTES))
def test_access(world: World, route: str, principal: str) -> None:
    check_case(world, route, principal)


def check_case(world: World, route: str, principal: str) -> None:
    """Send one route as one principal; check the status, and that a refusal changed nothing."""
    headers = dict(world.principals[principal])
    send = ROUTES[route]
    if route == "POST /files/ final of Q":
        target = "/files/" + upload_id(world.Q)
        headers = {**headers, "Upload-Concat": f"final;{target}"}
    before = world.snapshot()

    response = send(world, headers)

    want = expected(route, principal)
    assert response.status_code == want, (route, principal, response.get_data(as_text=True))
    if want == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if want >= 400 or route in READ_ONLY:
        assert world.snapshot() == before, "a refused request changed something"
    if route == "GET /api/uploads" and want == 200:
        listed = {u["id"] for u in response.get_json()["uploads"]}
        ids = {name: upload_id(getattr(world, name)) for name in ("U", "P", "G", "B")}
        if principal == "admin":
            assert listed == set(ids.values())
        elif principal == "other-user":
            assert listed == {ids["B"]}
        else:
            assert listed == {ids["U"], ids["P"], ids["G"]}
            owners = {u["owner"] for u in response.get_json()["uploads"]}
            assert owners == {"alice"}


def test_matrix_covers_every_route_of_the_app(world: World) -> None:
    """A new route must join the matrix: every rule and method of the app is crossed above."""
    rules = {
        (rule.rule, method)
        for rule in world.app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS") and rule.endpoint != "web.asset"
    }
    covered = {
        (_rule_of(name), name.split()[0].split("+")[0])
        for name in ROUTES
        if not name.startswith(("OPTIONS", "HEAD"))
    }
    assert rules <= covered | {("/files/<upload_id>", "POST")}, rules - covered


def _rule_of(route: str) -> str:
    path = route.split()[1]
    for name, rule in (
        ("/files/P", "/files/<upload_id>"),
        ("/files/U", "/files/<upload_id>"),
        ("/files/G", "/files/<upload_id>"),
        ("/api/uploads/U/links", "/api/uploads/<upload_id>/links"),
        ("/api/uploads/U/content", "/api/uploads/<upload_id>/content"),
        ("/api/uploads/U", "/api/uploads/<upload_id>"),
        ("/api/tokens/<alice's>", "/api/tokens/<token_id>"),
        ("/api/users/bob", "/api/users/<name>"),
        ("/links/U", "/links/<upload_id>"),
        ("/links/B", "/links/<upload_id>"),
    ):
        if path == name:
            return rule
    return path


def test_a_grant_holder_is_bounded(world: World) -> None:
    """At most `uploads` uploads of at most `max_size`, with the grant's metadata fixed."""
    app, client = world.app, world.client
    token = issue_grant(
        app.extensions["tusserver"].secret_key,
        Grant("g2", "alice", max_size=10, uploads=2, expires=time.time() + 60, metadata={"k": "v"}),
    )
    too_big = client.post("/files/", headers={**TUS, "Upload-Length": "11", **bearer(token)})
    assert too_big.status_code == 413
    first = create(client, 10, {**bearer(token), "Upload-Metadata": "k ZXZpbA=="})
    info = app.extensions["tusserver"].state.get(upload_id(first))
    assert info.owner == "alice" and info.grant == "g2" and info.metadata == {"k": "v"}
    deferred = create(client, None, bearer(token))
    over = patch(client, deferred, 0, b"x" * 11, **bearer(token), Upload_Length="11")
    assert over.status_code == 413
    third = client.post("/files/", headers={**TUS, "Upload-Length": "1", **bearer(token)})
    assert third.status_code == 403
    assert "2 upload" in third.get_data(as_text=True)


def test_a_strangers_patch_never_takes_the_lock_of_a_free_upload(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not even for a moment: the 404 comes from the same step that would take the lock."""
    state = world.app.extensions["tusserver"].state
    released: list[str] = []
    unlock = state.unlock

    def recording_unlock(upload_id: str, token: str) -> bool:
        released.append(upload_id)
        return unlock(upload_id, token)

    monkeypatch.setattr(state, "unlock", recording_unlock)
    for name in ("other-user", "grant"):
        refused = patch(world.client, world.P, 3, b"XYZ", **world.principals[name])
        assert refused.status_code == 404
    assert released == []
    # The probe works: the owner's PATCH at a stale offset takes the lock, then lets it go.
    mine = patch(world.client, world.P, 0, b"XYZ", **world.principals["owner"])
    assert mine.status_code == 409
    assert released == [upload_id(world.P)]


def test_the_lock_release_request_is_only_honoured_for_the_owner(world: World) -> None:
    """Another user's PATCH is a 404 before it touches the lock: it cannot cut off a writer."""
    app = world.app
    locks = app.extensions["tusserver"].locks
    pid = upload_id(world.P)
    with locks.hold(pid) as lock:
        refused = patch(world.client, world.P, 3, b"XYZ", **world.principals["other-user"])
        assert refused.status_code == 404
        held, asked = lock.refresh()
        assert held and not asked
