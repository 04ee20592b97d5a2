"""Links and grants with accounts on: who may make them, and what holding one lets you do."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest

from tests.support.jwks import AUDIENCE, ISSUER, Provider, serve_jwks
from tests.support.tus import TUS, create, head, metadata_header, patch, path_of, upload_id
from tusserver.auth.principal import Grant
from tusserver.auth.signed import issue_grant

PASSWORD = "correct horse battery staple"
JWT_SECRET = "j" * 48


@pytest.fixture
def secured(make_app: Any) -> Any:
    return make_app(auth="required", max_size=10**6)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(app: Any, name: str, role: str = "user") -> dict[str, str]:
    """A user with an API token; returns the header that authenticates as them."""
    accounts = app.extensions["tusserver"].accounts
    accounts.create_user(name, PASSWORD, role)
    token, _ = accounts.issue_token(name, "tests")
    return bearer(token)


def upload_as(client: Any, auth: dict[str, str], data: bytes = b"hello") -> str:
    path = create(client, len(data), headers=auth, filename="f.txt")
    assert patch(client, path, 0, data, **auth).status_code == 204
    return path


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def links_of(path: str) -> str:
    return f"/api/uploads/{upload_id(path)}/links"


# -- links ---------------------------------------------------------------------------------
def test_only_the_owner_or_an_admin_makes_or_revokes_links(secured: Any) -> None:
    client = secured.test_client()
    alice, bob = add_user(secured, "alice"), add_user(secured, "bob")
    admin = add_user(secured, "root", "admin")
    path = upload_as(client, alice)
    body = {"expires_in": 600}

    assert client.post(links_of(path), json=body, headers=alice).status_code == 201
    assert client.post(links_of(path), json=body, headers=admin).status_code == 201
    refused = client.post(links_of(path), json=body, headers=bob)
    assert refused.status_code == 404  # exactly as if it did not exist
    assert (
        refused.get_json()
        == client.post(
            "/api/uploads/0123456789abcdef0123456789abcdef/links", json=body, headers=bob
        ).get_json()
    )
    assert client.delete(links_of(path), headers=bob).status_code == 404
    anonymous = client.post(links_of(path), json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete(links_of(path)).status_code == 401


def test_a_link_works_with_no_credential_and_only_for_its_upload(secured: Any) -> None:
    client = secured.test_client()
    alice = add_user(secured, "alice")
    path, other = upload_as(client, alice, b"mine"), upload_as(client, alice, b"other")
    url = client.post(links_of(path), json={"expires_in": 600}, headers=alice).get_json()["url"]

    stranger = secured.test_client()  # no cookie, no token
    assert stranger.get(path).status_code == 401  # the file itself is not public
    response = stranger.get(local(url))
    assert response.status_code == 200
    assert response.data == b"mine"
    assert stranger.get(local(url), headers={"Range": "bytes=1-2"}).data == b"in"
    # The link's id swapped for another upload of the same owner: refused.
    swapped = local(url).replace(upload_id(path), upload_id(other))
    assert stranger.get(swapped).status_code == 403

    assert client.delete(links_of(path), headers=alice).status_code == 204
    assert stranger.get(local(url)).status_code == 403


def test_the_admin_revoking_someone_elses_links(secured: Any) -> None:
    client = secured.test_client()
    alice, admin = add_user(secured, "alice"), add_user(secured, "root", "admin")
    path = upload_as(client, alice)
    url = client.post(links_of(path), json={"expires_in": 60}, headers=alice).get_json()["url"]
    assert client.delete(links_of(path), headers=admin).status_code == 204
    assert client.get(local(url)).status_code == 403


# -- grants --------------------------------------------------------------------------------
def make_grant(client: Any, auth: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"max_size": 10, "expires_in": 600, "uploads": 2, **fields}
    response = client.post("/api/grants", json=body, headers=auth)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_a_grant_makes_at_most_n_uploads_owned_by_its_issuer(secured: Any) -> None:
    client = secured.test_client()
    alice = add_user(secured, "alice")
    issued = make_grant(client, alice, uploads=2, max_size=10)
    assert issued["grant"].startswith("tusg_")
    assert (issued["uploads"], issued["max_size"]) == (2, 10)
    assert issued["expires"].endswith("Z")
    holder = bearer(issued["grant"])

    first = upload_as(client, holder, b"0123456789")
    second = create(client, 3, headers=holder)
    third = client.post("/files/", headers={**TUS, **holder, "Upload-Length": "1"})
    assert third.status_code == 403

    listed = client.get("/api/uploads", headers=alice).get_json()["uploads"]
    assert {u["id"] for u in listed} == {upload_id(first), upload_id(second)}
    assert {u["owner"] for u in listed} == {"alice"}


def test_a_grant_limits_the_size_of_each_upload(secured: Any) -> None:
    client = secured.test_client()
    holder = bearer(make_grant(client, add_user(secured, "alice"), max_size=10)["grant"])
    too_big = client.post("/files/", headers={**TUS, **holder, "Upload-Length": "11"})
    assert too_big.status_code == 413
    path = create(client, 10, headers=holder)
    overflow = patch(client, path, 0, b"x" * 11, **holder)
    assert overflow.status_code == 413
    assert head(client, path).status_code == 401
    # A length declared later, or the sum of a concatenation, is bound by max_size as well.
    deferred = client.post("/files/", headers={**TUS, **holder, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 201
    late = patch(
        client, path_of(deferred.headers["Location"]), 0, b"x", Upload_Length="11", **holder
    )
    assert late.status_code == 413


def test_a_grant_cannot_concatenate_past_its_max_size(secured: Any) -> None:
    client = secured.test_client()
    holder = bearer(make_grant(client, add_user(secured, "alice"), max_size=10, uploads=3)["grant"])
    partial = {**TUS, **holder, "Upload-Length": "8", "Upload-Concat": "partial"}
    parts = []
    for _ in range(2):
        part = path_of(client.post("/files/", headers=partial).headers["Location"])
        assert patch(client, part, 0, b"y" * 8, **holder).status_code == 204
        parts.append(part)
    final = client.post(
        "/files/", headers={**TUS, **holder, "Upload-Concat": "final;" + " ".join(parts)}
    )
    assert final.status_code == 413


def test_a_grant_fixes_its_metadata(secured: Any) -> None:
    client = secured.test_client()
    alice = add_user(secured, "alice")
    grant = make_grant(client, alice, metadata={"project": "apollo", "filename": "fixed.bin"})
    holder = bearer(grant["grant"])
    sent = {**TUS, **holder, "Upload-Length": "1"}
    sent["Upload-Metadata"] = metadata_header(project="hacked", filename="evil.html", note="hi")
    response = client.post("/files/", headers=sent)
    assert response.status_code == 201
    info = client.get(
        f"/api/uploads/{upload_id(path_of(response.headers['Location']))}", headers=alice
    ).get_json()
    assert info["metadata"]["project"] == "apollo"
    assert info["metadata"]["filename"] == "fixed.bin"
    assert info["metadata"]["note"] == "hi"


def test_a_grant_touches_only_its_own_uploads(secured: Any) -> None:
    client = secured.test_client()
    alice = add_user(secured, "alice")
    own = create(client, 5, headers=alice)
    holder = bearer(make_grant(client, alice)["grant"])
    other_holder = bearer(make_grant(client, alice)["grant"])
    granted = create(client, 5, headers=holder)

    for who in (holder, other_holder):
        assert client.head(own, headers={**TUS, **who}).status_code == 404
        assert patch(client, own, 0, b"12345", **who).status_code == 404
        assert client.delete(own, headers={**TUS, **who}).status_code == 404
    assert client.head(granted, headers={**TUS, **other_holder}).status_code == 404
    assert client.head(granted, headers={**TUS, **holder}).status_code == 200
    assert patch(client, granted, 0, b"12345", **holder).status_code == 204
    # A grant uploads; it does not read, list or share.
    assert client.get(granted, headers=holder).status_code in (401, 404)
    assert client.get("/api/uploads", headers=holder).status_code == 401
    assert (
        client.post(links_of(granted), json={"expires_in": 60}, headers=holder).status_code == 401
    )
    assert client.post("/api/grants", json={}, headers=holder).status_code == 401
    assert client.delete(granted, headers={**TUS, **holder}).status_code == 204


def test_an_expired_or_forged_grant_is_401(secured: Any) -> None:
    client = secured.test_client()
    add_user(secured, "alice")
    key = secured.extensions["tusserver"].secret_key
    expired = Grant("g-old", "alice", 100, 5, time.time() - 1)
    response = client.post(
        "/files/", headers={**TUS, **bearer(issue_grant(key, expired)), "Upload-Length": "1"}
    )
    assert response.status_code == 401
    forged = issue_grant(
        b"not the server's key at all....!", Grant("g", "alice", 100, 5, time.time() + 60)
    )
    response = client.post("/files/", headers={**TUS, **bearer(forged), "Upload-Length": "1"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"max_size": 0, "expires_in": 60, "uploads": 1},
        {"max_size": 10**7, "expires_in": 60, "uploads": 1},  # above TUSSERVER_MAX_SIZE
        {"max_size": 10, "expires_in": 0, "uploads": 1},
        {"max_size": 10, "expires_in": 10**9, "uploads": 1},
        {"max_size": 10, "expires_in": 60, "uploads": 0},
        {"max_size": 10, "expires_in": 60, "uploads": 1, "metadata": ["x"]},
        {"max_size": 10, "expires_in": 60, "uploads": 1, "metadata": {"a b": "x"}},
        {"max_size": 10, "expires_in": 60, "uploads": 1, "metadata": {"a": 1}},
        {"max_size": 10, "expires_in": 60, "uploads": 1, "metadata": {"a": "x" * 5000}},
    ],
)
def test_bad_grant_requests_are_400(secured: Any, body: dict[str, Any]) -> None:
    client = secured.test_client()
    alice = add_user(secured, "alice")
    response = client.post("/api/grants", json=body, headers=alice)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad-request"


def test_anonymous_cannot_issue_grants(secured: Any) -> None:
    client = secured.test_client()
    body = {"max_size": 10, "expires_in": 60, "uploads": 1}
    assert client.post("/api/grants", json=body).status_code == 401


# -- JWT through the app -------------------------------------------------------------------
def test_a_jwt_user_is_created_on_first_use_and_owns_its_uploads(make_app: Any) -> None:
    app = make_app(auth="required", jwt_secret=JWT_SECRET, jwt_audience="tusserver")
    client = app.test_client()
    claims = {"sub": "carol@example.com", "aud": "tusserver", "exp": int(time.time()) + 60}
    carol = bearer(jwt.encode(claims, JWT_SECRET, algorithm="HS256"))
    me = client.get("/api/me", headers=carol)
    assert me.status_code == 200
    assert me.get_json()["name"] == "carol@example.com"
    assert me.get_json()["role"] == "user"
    path = upload_as(client, carol)
    assert client.get(f"/api/uploads/{upload_id(path)}", headers=carol).get_json()["owner"] == (
        "carol@example.com"
    )
    wrong_audience = jwt.encode({**claims, "aud": "other"}, JWT_SECRET, algorithm="HS256")
    assert client.get("/api/me", headers=bearer(wrong_audience)).status_code == 401
    expired = jwt.encode({**claims, "exp": int(time.time()) - 600}, JWT_SECRET, algorithm="HS256")
    assert client.get("/api/me", headers=bearer(expired)).status_code == 401


def test_a_jwt_from_a_jwks_provider_on_a_local_port(make_app: Any) -> None:
    idp = Provider()
    idp.add_key("k1")
    idp.add_key("stranger", publish=False)
    with serve_jwks(idp) as url:
        app = make_app(
            auth="required", jwt_jwks_url=url, jwt_audience=AUDIENCE, jwt_issuer=ISSUER,
            jwt_role_claim="roles",
        )  # fmt: skip
        client = app.test_client()
        dave = bearer(idp.token("k1", sub="dave", roles=["admin"]))
        me = client.get("/api/me", headers=dave)
        assert me.status_code == 200
        assert (me.get_json()["name"], me.get_json()["role"]) == ("dave", "admin")
        assert client.get("/api/users", headers=dave).status_code == 200
        for refused in (
            idp.token("k1", sub="dave", aud="another-app"),
            idp.token("k1", sub="dave", iss="https://evil.test/"),
            idp.token("k1", sub="dave", exp=int(time.time()) - 600),
            idp.token("stranger", sub="dave"),  # signed by a key the provider never published
        ):
            assert client.get("/api/me", headers=bearer(refused)).status_code == 401
