"""The principal: who a request acts for, and the few questions the service asks about it.

Every request gets exactly one principal, resolved before the service is called (deny by
default: a request with no valid credential is `ANONYMOUS`). The service never looks at
credentials, only at this object, so every way of proving identity (session cookie, API token,
JWT, upload grant, signed link, or `TUSSERVER_AUTH=none`) gets the same ownership rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["admin", "user", "anonymous"]
Via = Literal["open", "session", "token", "jwt", "grant", "link", "anonymous"]
Scope = Literal["upload", "read", "manage", "admin"]
SCOPES: tuple[Scope, ...] = ("upload", "read", "manage", "admin")
"""What an API token may be limited to: create/append/own HEAD, list/download,
rename/tag/delete, and the admin's rights over users and every file."""


@dataclass(frozen=True)
class Grant:
    """An upload grant: lets a holder without an account create a few bounded uploads.

    The uploads belong to `owner` (the user who issued the grant); `metadata` is fixed on every
    upload made with it, and the holder may touch only the uploads it created.
    """

    id: str
    owner: str
    max_size: int
    uploads: int
    expires: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """Who a request acts for.

    `name` is the user name (None for anonymous); `via` says how it was proven. A grant holder
    acts for the grant's owner but is limited by `grant`; a signed link opens only `link_upload`.
    `scopes` is None for full rights, else the subset of rights an API token was given.
    """

    name: str | None
    role: Role
    via: Via
    token_id: str | None = None
    grant: Grant | None = None
    link_upload: str | None = None
    scopes: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_anonymous(self) -> bool:
        return self.role == "anonymous"

    def allows(self, scope: Scope) -> bool:
        """May this principal use `scope`? Full rights (no scopes recorded) allow everything."""
        return self.scopes is None or scope in self.scopes

    def owns(self, owner: str | None) -> bool:
        """May this principal see and change an upload recorded with `owner`? Admins may."""
        if self.is_admin:
            return True
        return self.name is not None and owner == self.name


ANONYMOUS = Principal(name=None, role="anonymous", via="anonymous")
"""A request that proved nothing: it may only reach what is public."""

OPEN_ADMIN = Principal(name="admin", role="admin", via="open")
"""Every request under `TUSSERVER_AUTH=none`: one implicit admin, the server's old open mode."""
