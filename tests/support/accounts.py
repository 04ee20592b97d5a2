"""Users, tokens and sessions for access tests, written straight through the account store.

Hashing a password with argon2 takes a noticeable fraction of a second, so every test user here
shares one hash computed once per session; `PASSWORD` logs any of them in.
"""

from __future__ import annotations

import secrets
import time
from functools import cache
from typing import Any

from tusserver.auth.accounts import TOKEN_PREFIX, digest
from tusserver.auth.passwords import hash_password
from tusserver.state.accounts import TokenRecord

PASSWORD = "correct horse battery staple"


@cache
def shared_hash() -> str:
    return hash_password(PASSWORD)


def accounts_of(app: Any) -> Any:
    return app.extensions["tusserver"].accounts


def add_user(app: Any, name: str, role: str = "user", quota: int | None = None) -> None:
    accounts = accounts_of(app)
    assert accounts.store.add_user(name, role, shared_hash(), time.time())
    if quota is not None:
        accounts.store.update_user(name, quota=str(quota))


def add_token(
    app: Any, owner: str, expires: float | None = None, scopes: frozenset[str] | None = None
) -> str:
    """A bearer token for `owner`; `expires` is an absolute time (in the past: expired);
    `scopes` limits it (None: the owner's full rights)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(secrets.token_hex(8), owner, "test", time.time(), expires, None, scopes)
    accounts_of(app).store.add_token(digest(token), record)
    return token


def token_id(app: Any, token: str) -> str:
    identity = accounts_of(app).resolve_token(token)
    assert identity is not None
    return identity.token_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session_cookie(app: Any, user: str) -> str:
    cookie, _ = accounts_of(app).open_session(user)
    return cookie


def cookie_headers(cookie: str, origin: str | None = "http://localhost") -> dict[str, str]:
    headers = {"Cookie": f"tusserver_session={cookie}"}
    if origin is not None:
        headers["Origin"] = origin
    return headers
