"""Who is asking: the request's principal, resolved once in a `before_request`, kept on `flask.g`.

Order (the accounts contract): `TUSSERVER_AUTH=none` -> the implicit admin. Otherwise a bearer
credential (API token `tus_...`, upload grant `tusg_...`, or a JWT when one is configured), then
the session cookie, then nobody. A credential that is present but not valid is a 401 (never a
silent fall-back to anonymous), and anonymous requests reach only the public endpoints.
Cookie-authenticated state changes must come from our own origin (or an allowed CORS origin):
the browser's Origin header is the CSRF defence, as SameSite=Lax alone does not cover every
sub-domain or older browser.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from ..errors import BadRequest, Forbidden, Unauthorized
from .accounts import GRANT_PREFIX, TOKEN_PREFIX, Accounts
from .jwt import JwtVerifier
from .principal import ANONYMOUS, OPEN_ADMIN, Principal
from .scopes import FIXED_SCOPES, permits
from .signed import read_grant

log = logging.getLogger(__name__)

SESSION_COOKIE = "tusserver_session"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

PUBLIC_ENDPOINTS = {
    "api.health",
    "web.index",
    "web.asset",
    "account_api.login",
    "account_api.logout",
    "openapi.document",
    "links.link_download",
}
"""Endpoints anonymous requests may reach; any view can also opt in with `@public`."""

View = TypeVar("View", bound=Callable[..., Any])


def public(view: View) -> View:
    """Mark a view as reachable without a credential (it checks its own, e.g. a signed link)."""
    view.tusserver_public = True  # type: ignore[attr-defined]
    return view


def current_principal() -> Principal:
    """The principal `resolve_request` stored; deny by default if it never ran."""
    return g.get("principal", ANONYMOUS)


def resolve_request() -> None:
    """The `before_request` hook: set `g.principal`, or refuse the request."""
    components = current_app.extensions["tusserver"]
    if components.settings.auth == "none":
        g.principal = OPEN_ADMIN
        return
    if request.method == "OPTIONS":  # CORS preflights and tus discovery carry no credential
        g.principal = ANONYMOUS
        return
    principal = _from_credentials(components)
    g.principal = principal
    if principal.is_anonymous:
        if not _is_public():
            raise Unauthorized()
        return
    if principal.via == "grant" and not _grant_may_reach():
        raise Unauthorized("an upload grant is only good for uploads (tus, POST /api/files)")
    if principal.via == "session" and request.method in STATE_CHANGING:
        check_origin(components.settings)


def _from_credentials(components: Any) -> Principal:
    accounts: Accounts = components.accounts
    bearer = _bearer()
    if bearer is not None:
        return _from_bearer(bearer, components)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        identity = accounts.resolve_session(cookie)
        if identity is not None:
            return _session_principal(identity.name, identity.role)
        # A stale cookie is not an error: the page shows the login form (or a public route
        # goes on); anything that needs a user gets the 401 below.
    return ANONYMOUS


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("use Authorization: Bearer <token>")
    return value.strip()


def _from_bearer(token: str, components: Any) -> Principal:
    accounts: Accounts = components.accounts
    if token.startswith(TOKEN_PREFIX):
        identity = accounts.resolve_token(token)
        if identity is None:
            raise Unauthorized("the token is unknown, revoked or expired", _invalid_token())
        return _token_principal(identity.name, identity.role, identity.token_id, identity.scopes)
    if token.startswith(GRANT_PREFIX):
        principal = _from_grant(token, components.secret_key)
        if principal is None:
            raise Unauthorized("the upload grant is invalid or expired", _invalid_token())
        return principal
    principal = _from_jwt(token, accounts, components.jwt)
    if principal is None:
        raise Unauthorized("the bearer token is not valid here", _invalid_token())
    return principal


def _from_grant(token: str, key: bytes) -> Principal | None:
    grant = read_grant(key, token)
    if grant is None:
        return None
    return Principal(grant.owner, "user", "grant", grant=grant, scopes=FIXED_SCOPES["grant"])


def _from_jwt(token: str, accounts: Accounts, verifier: JwtVerifier | None) -> Principal | None:
    """A JWT from the configured identity provider; its subject becomes a user on first use."""
    if verifier is None:
        return None
    verified = verifier.verify(token)
    if verified is None:
        return None
    subject, claimed_role = verified
    try:
        user = accounts.ensure_user(subject, claimed_role)
    except BadRequest:  # a subject that cannot be a user name here
        return None
    if user.disabled:
        return None
    # With a role claim configured the identity provider decides; else tusserver's own role.
    role = claimed_role if verifier.role_claim else user.role
    return Principal(user.name, _role(role), "jwt")


@functools.lru_cache(maxsize=4096)
def _token_principal(
    name: str, role: str, token_id: str | None, scopes: frozenset[str] | None = None
) -> Principal:
    """Principals are immutable: one object per (user, role, token, scopes), made once.

    An admin's token without the `admin` scope acts as a plain user: other users' uploads are
    404 to it and user management 403, exactly as for any user (auth/scopes.py).
    """
    principal = Principal(name, _role(role), "token", token_id=token_id, scopes=scopes)
    if principal.is_admin and not permits(principal, "others"):
        principal = Principal(name, "user", "token", token_id=token_id, scopes=scopes)
    return principal


@functools.lru_cache(maxsize=4096)
def _session_principal(name: str, role: str) -> Principal:
    return Principal(name, _role(role), "session")


def _grant_may_reach() -> bool:
    """Grants upload: the tus endpoints, and the one-request JSON upload."""
    if request.path.startswith("/files"):
        return True
    return request.method == "POST" and request.path.rstrip("/") == "/api/files"


def _invalid_token() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="tusserver", error="invalid_token"'}


def _role(role: str) -> Any:
    return "admin" if role == "admin" else "user"


def _is_public() -> bool:
    endpoint = request.endpoint
    if endpoint is None:  # no route: let routing answer 404/405, it tells nothing
        return True
    if endpoint in PUBLIC_ENDPOINTS:
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "tusserver_public", False))


def own_origin() -> str:
    """scheme://host[:port] of this server as the client reached it (proxy-aware)."""
    return request.host_url.rstrip("/")


def check_origin(settings: Any) -> None:
    """403 unless the request's Origin is ours or an allowed CORS origin (never `*`)."""
    origin = request.headers.get("Origin", "")
    allowed = {own_origin(), *(o for o in settings.cors_origins if o != "*")}
    if origin not in allowed:
        raise Forbidden("cross-site request refused: the Origin is not this server's")
