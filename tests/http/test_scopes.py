"""Scoped API tokens: made through the API and the CLI, listed with their scopes, and held to them.

The access matrix checks every route against a token of each single scope; these tests check
the rules around it: what a token may be given, that a refusal changes nothing, that another
user's upload stays a 404 whatever the scopes, and that an admin's token without `admin` is a
plain user's.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from tests.support.accounts import accounts_of, add_token, add_user, bearer
from tests.support.tus import TUS, create, patch, upload_id
from tusserver.cli import main


@pytest.fixture
def store_kind() -> str:
    """Scopes are checked in the service, before any byte is stored: one store is enough."""
    return "local"


@pytest.fixture
def app(make_app: Any) -> Flask:
    app = make_app(auth="required")
    for name, role in (("root", "admin"), ("alice", "user"), ("bob", "user")):
        add_user(app, name, role)
    return app


def token_for(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/tokens", json={"label": "t", **body}, headers=headers)


def test_tokens_get_scopes_through_the_api_and_list_them(app: Flask) -> None:
    client = app.test_client()
    alice = bearer(add_token(app, "alice"))
    made = token_for(client, alice, scopes=["upload", "read", "read"])
    assert made.status_code == 201
    assert made.get_json()["scopes"] == ["upload", "read"]
    full = token_for(client, alice)
    assert full.get_json()["scopes"] is None
    listed = {
        t["id"]: t["scopes"] for t in client.get("/api/tokens", headers=alice).get_json()["tokens"]
    }
    assert listed[made.get_json()["id"]] == ["upload", "read"]
    assert listed[full.get_json()["id"]] is None


@pytest.mark.parametrize("scopes", [["write"], [], "read", [1], ["read", None]])
def test_unknown_or_malformed_scopes_are_400(app: Flask, scopes: Any) -> None:
    client = app.test_client()
    alice = bearer(add_token(app, "alice"))
    before = len(accounts_of(app).list_tokens("alice"))
    assert token_for(client, alice, scopes=scopes).status_code == 400
    assert len(accounts_of(app).list_tokens("alice")) == before


def test_only_an_admin_token_may_have_the_admin_scope(app: Flask) -> None:
    client = app.test_client()
    assert token_for(client, bearer(add_token(app, "alice")), scopes=["admin"]).status_code == 403
    made = token_for(client, bearer(add_token(app, "root")), scopes=["admin"])
    assert made.status_code == 201
    # An admin may not hand the admin scope to a user's token either.
    given = token_for(client, bearer(add_token(app, "root")), scopes=["admin"], owner="alice")
    assert given.status_code == 403


def test_a_scoped_token_cannot_mint_wider_tokens(app: Flask) -> None:
    client = app.test_client()
    reader = bearer(add_token(app, "alice", scopes=frozenset({"read"})))
    assert token_for(client, reader, scopes=["read", "manage"]).status_code == 403
    inherited = token_for(client, reader)
    assert inherited.status_code == 201 and inherited.get_json()["scopes"] == ["read"]


def test_out_of_scope_is_403_and_changes_nothing(app: Flask) -> None:
    client = app.test_client()
    alice = bearer(add_token(app, "alice"))
    uploader = bearer(add_token(app, "alice", scopes=frozenset({"upload"})))
    reader = bearer(add_token(app, "alice", scopes=frozenset({"read"})))
    path = create(client, 10, alice, filename="a.txt")
    assert patch(client, path, 0, b"hello", **alice).status_code == 204

    # A reader may look and read, never write, rename or delete.
    assert client.head(path, headers={**TUS, **reader}).headers["Upload-Offset"] == "5"
    refused = patch(client, path, 5, b"XXXXX", **reader)
    assert refused.status_code == 403
    assert "upload scope" in refused.get_data(as_text=True)
    rename = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "b"}, headers=reader)
    assert rename.status_code == 403
    assert client.delete(path, headers={**TUS, **reader}).status_code == 403
    info = app.extensions["tusserver"].state.get(upload_id(path))
    assert (info.offset, info.metadata["filename"]) == (5, "a.txt")

    # An uploader may append and HEAD, but not list or download.
    assert patch(client, path, 5, b"world", **uploader).status_code == 204
    assert client.get("/api/uploads", headers=uploader).status_code == 403
    assert client.get(path, headers=uploader).status_code == 403
    assert client.get(path, headers=reader).data == b"helloworld"
    post = client.post("/api/files", json={"filename": "x", "text": "x"}, headers=reader)
    assert post.status_code == 403
    assert client.get("/api/uploads", headers=alice).get_json()["total"] == 1


def test_another_users_upload_stays_404_whatever_the_scopes(app: Flask) -> None:
    client = app.test_client()
    bob = bearer(add_token(app, "bob"))
    path = create(client, 5, bob)
    reader = bearer(add_token(app, "alice", scopes=frozenset({"read"})))
    assert patch(client, path, 0, b"hello", **reader).status_code == 404
    assert client.delete(path, headers={**TUS, **reader}).status_code == 404
    gone = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "n"}, headers=reader)
    assert gone.status_code == 404


def test_an_admin_token_without_the_admin_scope_is_a_plain_user(app: Flask) -> None:
    client = app.test_client()
    alice = bearer(add_token(app, "alice"))
    path = create(client, 5, alice)
    limited = bearer(add_token(app, "root", scopes=frozenset({"read", "manage"})))
    assert client.get(f"/api/uploads/{upload_id(path)}", headers=limited).status_code == 404
    assert client.get("/api/users", headers=limited).status_code == 403
    assert client.get("/api/me", headers=limited).get_json()["role"] == "user"
    full = bearer(add_token(app, "root", scopes=frozenset({"read", "admin"})))
    assert client.get(f"/api/uploads/{upload_id(path)}", headers=full).status_code == 200
    assert client.get("/api/users", headers=full).status_code == 200


def test_removing_a_user_with_its_uploads_needs_manage_too(app: Flask) -> None:
    client = app.test_client()
    create(client, 5, bearer(add_token(app, "bob")))
    admin_only = bearer(add_token(app, "root", scopes=frozenset({"admin"})))
    refused = client.delete("/api/users/bob?delete_uploads=true", headers=admin_only)
    assert refused.status_code == 403
    assert accounts_of(app).store.get_user("bob") is not None
    both = bearer(add_token(app, "root", scopes=frozenset({"admin", "manage"})))
    assert client.delete("/api/users/bob?delete_uploads=true", headers=both).status_code == 204
    assert client.get("/api/uploads", headers=both).status_code == 403  # no read scope
    full = bearer(add_token(app, "root"))
    assert client.get("/api/uploads", headers=full).get_json()["total"] == 0


def test_a_grant_may_post_a_json_file_within_its_limits(app: Flask) -> None:
    client = app.test_client()
    alice = bearer(add_token(app, "alice"))
    made = client.post(
        "/api/grants", json={"max_size": 4, "expires_in": 60, "uploads": 1}, headers=alice
    )
    grant = bearer(made.get_json()["grant"])
    big = client.post(
        "/api/files",
        json={"filename": "g", "content_base64": base64.b64encode(b"12345").decode()},
        headers=grant,
    )
    assert big.status_code == 413
    assert client.get("/api/uploads", headers=alice).get_json()["total"] == 0


def test_the_cli_creates_and_lists_scoped_tokens(
    app: Flask, redis_url: str, redis_prefix: str, data_dir: Path
) -> None:
    env = {
        "TUSSERVER_REDIS_URL": redis_url,
        "TUSSERVER_REDIS_PREFIX": redis_prefix,
        "TUSSERVER_DATA_DIR": str(data_dir),
    }
    runner = CliRunner()
    made = runner.invoke(
        main, ["tokens", "create", "alice", "--scope", "read", "--scope", "upload"], env=env
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    principal = accounts_of(app).resolve_token(token)
    assert principal.scopes == frozenset({"read", "upload"})
    listed = runner.invoke(main, ["tokens", "list", "alice"], env=env)
    assert "upload,read" in listed.stdout
    wrong = runner.invoke(main, ["tokens", "create", "alice", "--scope", "write"], env=env)
    assert wrong.exit_code != 0
    refused = runner.invoke(main, ["tokens", "create", "alice", "--scope", "admin"], env=env)
    assert refused.exit_code != 0 and "admin" in refused.output
