"""The account rules: users, passwords, API tokens, sessions, failed-login limits, quotas.

No Flask here: the JSON API, the CLI and the per-request resolver all call these methods, so a
user made with `tusserver users add` and one made through `POST /api/users` obey the same rules.
Secrets (passwords, tokens, session cookies) arrive here, are hashed, and never leave or get
logged; Redis holds only their hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import NamedTuple

from ..errors import (
    BadRequest,
    Conflict,
    Forbidden,
    TooManyRequests,
    Unauthorized,
    UploadNotFound,
)
from ..settings import Settings
from ..state.accounts import AccountStore, TokenRecord, UserRecord
from . import passwords
from .events import log_security_event
from .scopes import decode_scopes, encode_scopes

ROLES = ("admin", "user")
TOKEN_PREFIX = "tus_"
GRANT_PREFIX = "tusg_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+|-]{0,63}")
"""User names: what identity providers' subjects look like, nothing that could split a key."""
LABEL_MAX = 100

LOGIN_WINDOW = 15 * 60
FAILURES_PER_NAME = 5
"""Guesses at one account per window: slow enough to make online guessing hopeless."""
FAILURES_PER_ADDRESS = 30
"""Failures from one address per window, whatever the names: stops spraying many accounts."""
TOKEN_TOUCH_INTERVAL = 60.0
"""A token's last-used time is rewritten at most this often, not on every request."""


class UserNotFound(UploadNotFound):
    code, default_message = "not-found", "No such user"


class TokenNotFound(UploadNotFound):
    code, default_message = "not-found", "No such token"


class Identity(NamedTuple):
    """Who a credential stands for: a user name and its current role (and which token).

    A named tuple: one is made on every authenticated request, and these are cheap."""

    name: str
    role: str
    token_id: str | None = None
    scopes: frozenset[str] | None = None


def digest(secret: str) -> str:
    """The stored form of a token or session cookie: sha256, hex.

    The secrets have 256 random bits, so a fast hash is enough (no dictionary to attack) and
    lets a lookup cost one Redis read; comparing happens inside Redis on a hash of the secret,
    so no timing of ours depends on how much of a guess was right.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class Accounts:
    """Users, tokens and sessions over an `AccountStore`."""

    def __init__(
        self, store: AccountStore, settings: Settings, clock: Callable[[], float] = time.time
    ):
        self.store = store
        self.settings = settings
        self.clock = clock

    # -- users -----------------------------------------------------------------------------
    def create_user(
        self,
        name: str,
        password: str | None,
        role: str = "user",
        quota: int | None = None,
    ) -> UserRecord:
        """A new user; `password` None makes one that cannot log in with a password (JWT)."""
        check_name(name)
        check_role(role)
        check_quota(quota)
        password_hash = ""
        if password is not None:
            problem = passwords.check_strength(password)
            if problem:
                raise BadRequest(problem)
            password_hash = passwords.hash_password(password)
        if not self.store.add_user(name, role, password_hash, self.clock()):
            raise Conflict(f"user {name!r} already exists")
        if quota is not None:
            self.store.update_user(name, quota=str(quota))
        log_security_event("user-created", user=name, role=role)
        return self.get_user(name)

    def ensure_user(self, name: str, role: str = "user") -> UserRecord:
        """The user, created without a password on first sight (identity-provider subjects)."""
        record = self.store.get_user(name)
        if record is not None:
            return record
        try:
            return self.create_user(name, None, role)
        except Conflict:  # another request created it meanwhile
            return self.get_user(name)

    def get_user(self, name: str) -> UserRecord:
        record = self.store.get_user(name) if NAME_PATTERN.fullmatch(name or "") else None
        if record is None:
            raise UserNotFound()
        return record

    def list_users(self) -> list[tuple[UserRecord, int]]:
        return self.store.list_users()

    def has_users(self) -> bool:
        return self.store.has_users()

    def update_user(
        self,
        name: str,
        *,
        role: str | None = None,
        quota: int | None = None,
        clear_quota: bool = False,
        disabled: bool | None = None,
        password: str | None = None,
    ) -> UserRecord:
        """Change a user. Disabling it or changing its password ends its sessions at once."""
        before = self.get_user(name)
        fields: dict[str, str] = {}
        if role is not None:
            check_role(role)
            fields["role"] = role
        if clear_quota:
            fields["quota"] = ""
        elif quota is not None:
            check_quota(quota)
            fields["quota"] = str(quota)
        if disabled is not None:
            fields["disabled"] = "1" if disabled else ""
        if password is not None:
            problem = passwords.check_strength(password)
            if problem:
                raise BadRequest(problem)
            fields["hash"] = passwords.hash_password(password)
        if not fields:
            return before
        if not self.store.update_user(name, **fields):
            raise UserNotFound()
        if password is not None or disabled:
            self.store.end_sessions(name)
        if role is not None and role != before.role:
            log_security_event("role-changed", user=name, role=role, previous=before.role)
        if "quota" in fields:
            log_security_event("quota-changed", user=name, quota=fields["quota"] or "default")
        if disabled is not None and disabled != before.disabled:
            log_security_event("user-disabled" if disabled else "user-enabled", user=name)
        if password is not None:
            log_security_event("password-changed", user=name)
        return self.get_user(name)

    def remove_user(self, name: str) -> None:
        self.get_user(name)
        if not self.store.remove_user(name):
            raise UserNotFound()
        log_security_event("user-removed", user=name)

    def usage(self, name: str) -> int:
        return self.store.usage(name)

    def quota_of(self, user: UserRecord) -> int | None:
        """The user's byte quota (None: no limit; admins have none)."""
        if user.role == "admin":
            return None
        quota = self.settings.default_quota if user.quota is None else user.quota
        return quota or None

    # -- logging in ------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, address: str) -> UserRecord:
        """The user if name and password match; one answer for every kind of "no".

        Failed attempts are counted per name and per client address; past either limit the
        answer is 429 with Retry-After, before the password is even looked at.
        """
        name_key = name.lower()[:128]
        for kind, key, limit in (
            ("name", name_key, FAILURES_PER_NAME),
            ("addr", address, FAILURES_PER_ADDRESS),
        ):
            failures, ttl = self.store.login_failures(kind, key)
            if failures >= limit:
                log_security_event("login-throttled", user=name_key, address=address, by=kind)
                raise TooManyRequests(
                    "too many failed logins; try again later",
                    headers={"Retry-After": str(max(ttl, 1))},
                )
        record = self.store.get_user(name) if NAME_PATTERN.fullmatch(name) else None
        usable = record is not None and not record.disabled and bool(record.password_hash)
        matches = passwords.verify(record.password_hash if usable and record else None, password)
        if not (usable and matches and record):
            self.store.count_login_failure("name", name_key, LOGIN_WINDOW)
            self.store.count_login_failure("addr", address, LOGIN_WINDOW)
            log_security_event("login-failed", user=name_key, address=address)
            raise Unauthorized("wrong user name or password")
        self.store.clear_login_failures("name", name_key)
        if passwords.needs_rehash(record.password_hash):
            self.store.update_user(name, hash=passwords.hash_password(password))
        log_security_event("login", user=name, address=address)
        return record

    # -- sessions --------------------------------------------------------------------------
    def open_session(self, user: str) -> tuple[str, float]:
        """A new session for `user`: (cookie value, expiry time). Only its hash is stored."""
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.settings.session_lifetime
        self.store.add_session(digest(cookie), user, now, expires)
        return cookie, expires

    def resolve_session(self, cookie: str) -> Identity | None:
        if not cookie or len(cookie) > 128:
            return None
        user, role = self.store.resolve_session(digest(cookie), self.clock())
        return Identity(user, role) if user else None

    def close_session(self, cookie: str) -> None:
        if cookie and len(cookie) <= 128:
            self.store.remove_session(digest(cookie))

    # -- API tokens ------------------------------------------------------------------------
    def issue_token(
        self,
        owner: str,
        label: str = "",
        expires_in: float | None = None,
        scopes: frozenset[str] | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token for `owner`: (the token, shown once; its record).

        `scopes` limits what the token may do (None: the owner's full rights); only an admin's
        token may carry the `admin` scope, as it grants nothing to anyone else.
        """
        user = self.get_user(owner)
        if scopes is not None and "admin" in scopes and user.role != "admin":
            raise Forbidden("only an admin's token may have the admin scope")
        label = label.strip()
        if len(label) > LABEL_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in label):
            raise BadRequest(f"a label has at most {LABEL_MAX} printable characters")
        if expires_in is not None and not 0 < expires_in <= 10 * 365 * 86400:
            raise BadRequest("expires_in must be a number of seconds from 1 to ten years")
        now = self.clock()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = TokenRecord(
            id=secrets.token_hex(8),
            owner=user.name,
            label=label,
            created=now,
            expires=None if expires_in is None else now + expires_in,
            last_used=None,
            scopes=scopes,
        )
        self.store.add_token(digest(token), record)
        log_security_event(
            "token-created",
            user=owner,
            token_id=record.id,
            label=label,
            scopes=encode_scopes(scopes) or "all",
        )
        return token, record

    def resolve_token(self, token: str) -> Identity | None:
        """Who an API token stands for, or None if it is unknown, revoked, expired or disabled."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        owner, role, token_id, scopes = self.store.resolve_token(
            digest(token), self.clock(), TOKEN_TOUCH_INTERVAL
        )
        return Identity(owner, role, token_id, decode_scopes(scopes)) if owner else None

    def get_token(self, token_id: str) -> TokenRecord:
        record = self.store.get_token(token_id) if _is_token_id(token_id) else None
        if record is None:
            raise TokenNotFound()
        return record

    def list_tokens(self, owner: str) -> list[TokenRecord]:
        return self.store.list_tokens(owner)

    def revoke_token(self, token_id: str) -> TokenRecord:
        record = self.store.revoke_token(token_id) if _is_token_id(token_id) else None
        if record is None:
            raise TokenNotFound()
        log_security_event("token-revoked", user=record.owner, token_id=token_id)
        return record

    # -- quotas and grants -----------------------------------------------------------------
    def reserve(self, owner: str, size: int, exempt: bool) -> None:
        """Count `size` more bytes held by `owner`; 413 saying what is left if they do not fit."""
        if size <= 0:
            return
        ok, left = self.store.reserve(owner, size, self.settings.default_quota, exempt)
        if not ok:
            raise_over_quota(size, left)

    def release(self, owner: str, size: int) -> None:
        self.store.release(owner, size)

    def use_grant(self, grant_id: str, limit: int, expires: float) -> bool:
        return self.store.use_grant(grant_id, limit, expires)

    # -- first start -----------------------------------------------------------------------
    def bootstrap_admin(self) -> str | None:
        """With no user at all, create `admin`; its password (to show once), else None."""
        if self.store.has_users():
            return None
        password = self.settings.admin_password or secrets.token_urlsafe(15)
        try:
            self.create_user("admin", password, role="admin")
        except Conflict:  # another worker or server got there first
            return None
        return password


def raise_over_quota(size: int, left: int) -> None:
    from ..errors import TooLarge

    left = max(left, 0)
    raise TooLarge(f"over quota: {size} more bytes do not fit, {left} bytes left ({_human(left)})")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise BadRequest(
            "a user name has 1 to 64 letters, digits or . _ @ + | - and starts with a letter "
            "or digit"
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")


def check_quota(quota: int | None) -> None:
    if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int) or quota < 0):
        raise BadRequest("quota must be a whole number of bytes, 0 for no limit")


def _is_token_id(token_id: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{16}", token_id or ""))
