"""The accounts JSON API: /api/session (login, logout), /api/me, /api/tokens, /api/users.

Every answer is JSON; errors are the catalogue's `{"error": {"code", "message"}}`. Users manage
their own tokens; admins manage everyone's, and the users. A token is shown once, in the answer
that creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from ..auth.accounts import Accounts, TokenNotFound, check_name
from ..auth.principal import SCOPES, Principal
from ..auth.resolve import SESSION_COOKIE
from ..auth.scopes import ordered, parse_scopes, require_scope
from ..errors import BadRequest, Forbidden
from ..state.accounts import TokenRecord, UserRecord
from .common import principal, service

bp = Blueprint("account_api", __name__, url_prefix="/api")


def accounts() -> Accounts:
    return current_app.extensions["tusserver"].accounts


# -- session -------------------------------------------------------------------------------
@bp.post("/session")
def login() -> Response:
    """`{"name", "password"}` -> the user, and a session cookie (HttpOnly, SameSite=Lax)."""
    body = _json_object()
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise BadRequest('expected a JSON object like {"name": "...", "password": "..."}')
    user = accounts().authenticate(name, password, request.remote_addr or "-")
    cookie, _expires = accounts().open_session(user.name)
    response = jsonify(name=user.name, role=user.role)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=service().settings.session_lifetime,
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/session")
def logout() -> Response:
    """End the session server-side (on every server) and drop the cookie."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        accounts().close_session(cookie)
    response = Response(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=request.is_secure, httponly=True)
    return response


@bp.get("/me")
def me() -> Response:
    """Who the caller is, what it holds and may hold."""
    caller = principal()
    settings = service().settings
    usage, quota = 0, None
    if caller.name is not None:
        usage = accounts().usage(caller.name)
        record = accounts().store.get_user(caller.name)
        if record is not None:
            quota = accounts().quota_of(record)
        elif not caller.is_admin:
            quota = settings.default_quota or None
    return jsonify(name=caller.name, role=caller.role, usage=usage, quota=quota, auth=settings.auth)


# -- tokens --------------------------------------------------------------------------------
@bp.get("/tokens")
def list_tokens() -> Response:
    """The caller's tokens; admins may ask for anyone's with `?owner=`."""
    owner = _owner_for(principal(), request.args.get("owner"))
    return jsonify(tokens=[token_json(t) for t in accounts().list_tokens(owner)])


@bp.post("/tokens")
def create_token() -> Response:
    """`{"label", "expires_in"?, "scopes"?, "owner"? (admins)}` -> 201 the token object plus
    `token`. Without `scopes` the token has its owner's full rights; a scoped token can only
    create tokens within its own scopes (never more than it holds)."""
    body = _json_object()
    label = body.get("label", "")
    expires_in = body.get("expires_in")
    if not isinstance(label, str):
        raise BadRequest("label must be a string")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int | float)
    ):
        raise BadRequest("expires_in must be a number of seconds")
    owner_arg = body.get("owner")
    if owner_arg is not None and not isinstance(owner_arg, str):
        raise BadRequest("owner must be a user name")
    caller = principal()
    owner = _owner_for(caller, owner_arg)
    scopes = _requested_scopes(caller, body.get("scopes"))
    token, record = accounts().issue_token(owner, label, expires_in, scopes)
    response = jsonify({**token_json(record), "token": token})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/tokens/<token_id>")
def revoke_token(token_id: str) -> Response:
    """Revoke a token: its owner or an admin; anyone else's is 404, as if it did not exist."""
    caller = principal()
    record = accounts().get_token(token_id)
    if not caller.owns(record.owner):
        raise TokenNotFound()
    accounts().revoke_token(token_id)
    return Response(status=204)


# -- users (admins) ------------------------------------------------------------------------
@bp.get("/users")
def list_users() -> Response:
    _require_admin()
    return jsonify(users=[user_json(u, usage) for u, usage in accounts().list_users()])


@bp.post("/users")
def create_user() -> Response:
    """`{"name", "password", "role"?, "quota"?}` -> 201 the user."""
    _require_admin()
    body = _json_object()
    name, password = body.get("name"), body.get("password")
    role = body.get("role", "user")
    if not isinstance(name, str) or not isinstance(password, str) or not isinstance(role, str):
        raise BadRequest('expected a JSON object like {"name": "...", "password": "..."}')
    quota = _quota(body.get("quota"))
    user = accounts().create_user(name, password, role, quota)
    response = jsonify(user_json(user, 0))
    response.status_code = 201
    return response


@bp.patch("/users/<name>")
def update_user(name: str) -> Response:
    """`{"role"?, "quota"? (null: the default), "disabled"?, "password"?}` -> the user."""
    _require_admin()
    body = _json_object()
    role, disabled, password = body.get("role"), body.get("disabled"), body.get("password")
    if role is not None and not isinstance(role, str):
        raise BadRequest("role must be a string")
    if disabled is not None and not isinstance(disabled, bool):
        raise BadRequest("disabled must be true or false")
    if password is not None and not isinstance(password, str):
        raise BadRequest("password must be a string")
    caller = principal()
    if name == caller.name and (disabled or (role is not None and role != "admin")):
        raise Forbidden("an admin cannot disable or demote itself")
    user = accounts().update_user(
        name,
        role=role,
        quota=_quota(body.get("quota")),
        clear_quota="quota" in body and body["quota"] is None,
        disabled=disabled,
        password=password,
    )
    return jsonify(user_json(user, accounts().usage(name)))


@bp.delete("/users/<name>")
def delete_user(name: str) -> Response:
    """Remove a user (tokens and sessions end at once); `?delete_uploads=true` removes its
    uploads too, else they stay, visible to admins."""
    _require_admin()
    caller = principal()
    if name == caller.name:
        raise Forbidden("an admin cannot remove itself")
    accounts().get_user(name)
    if request.args.get("delete_uploads", "").lower() in ("1", "true", "yes"):
        require_scope(caller, "delete")  # removing the uploads too needs `manage` as well
        service().remove_owned_by(name, caller)
    accounts().remove_user(name)
    return Response(status=204)


# -- rendering -----------------------------------------------------------------------------
def user_json(user: UserRecord, usage: int) -> dict[str, Any]:
    return {
        "name": user.name,
        "role": user.role,
        "created": _iso(user.created),
        "disabled": user.disabled,
        "quota": accounts().quota_of(user),
        "quota_override": user.quota,
        "usage": usage,
    }


def token_json(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "owner": token.owner,
        "created": _iso(token.created),
        "expires": _iso(token.expires),
        "last_used": _iso(token.last_used),
        "scopes": ordered(token.scopes),
    }


def _requested_scopes(caller: Principal, value: Any) -> frozenset[str] | None:
    """The scopes a new token gets: as asked (validated), never beyond the caller's own."""
    if value is None:
        return caller.scopes
    if not isinstance(value, list):
        raise BadRequest(f'scopes must be a list such as ["read", "upload"] ({", ".join(SCOPES)})')
    scopes = parse_scopes(value)
    if caller.scopes is not None and not scopes <= caller.scopes:
        raise Forbidden("a token cannot create a token with scopes it does not have itself")
    return scopes


def _owner_for(caller: Principal, requested: str | None) -> str:
    """Whose tokens: the caller's own, or (admins only) the named user's."""
    if requested and requested != caller.name:
        if not caller.is_admin:
            raise Forbidden("only admins manage other users' tokens")
        check_name(requested)
        return accounts().get_user(requested).name
    if caller.name is None:
        raise Forbidden("no user")
    return caller.name


def _require_admin() -> None:
    if not principal().is_admin:
        raise Forbidden("only admins manage users")


def _quota(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # JSON does not tell 5.0 from 5
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("quota must be a whole number of bytes (0: no limit) or null")
    return value


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
