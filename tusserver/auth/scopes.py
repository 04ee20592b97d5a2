"""Which scope each operation needs: the one table scoped API tokens are checked against.

A token created with scopes may do only the operations whose scope it holds; a token created
without scopes (and every session, JWT and open-mode request) has its user's full rights. Upload
grants and signed links have fixed rights, expressed as fixed scopes in `FIXED_SCOPES`.

The check comes after the ownership check wherever an operation names an upload: an upload the
caller may not see stays a 404 (it must not learn that the id exists from a 403), and only the
caller's own uploads can answer 403 for a missing scope (docs/architecture.md, "Scoped tokens").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ..errors import BadRequest, Forbidden
from .principal import SCOPES, Principal, Scope

Operation = Literal[
    "create",
    "append",
    "head",
    "list",
    "download",
    "events",
    "rename",
    "tag",
    "delete",
    "share",
    "grant",
    "users",
    "others",
]

OPERATION_SCOPES: dict[Operation, frozenset[Scope]] = {
    # upload: create, append, and look at one's own uploads' state (tus HEAD, GET one upload)
    "create": frozenset({"upload"}),
    "append": frozenset({"upload"}),
    "head": frozenset({"upload", "read"}),
    "grant": frozenset({"upload"}),  # an upload grant lets someone else upload for you
    # read: list, download (bytes, JSON content), the event stream
    "list": frozenset({"read"}),
    "download": frozenset({"read"}),
    "events": frozenset({"read"}),
    # manage: rename, tag, delete, share with a signed link
    "rename": frozenset({"manage"}),
    "tag": frozenset({"manage"}),
    "delete": frozenset({"manage"}),
    "share": frozenset({"manage"}),
    # admin: user management and other users' files
    "users": frozenset({"admin"}),
    "others": frozenset({"admin"}),
}
"""Operation -> the scopes any one of which allows it. Token management (list, create, revoke
one's own tokens) needs no scope: a scoped token can only mint tokens within its own scopes."""

FIXED_SCOPES: dict[str, frozenset[Scope]] = {
    "grant": frozenset({"upload", "manage"}),  # create, append, HEAD, DELETE its own uploads
    "link": frozenset({"read"}),  # download its one upload
}


def permits(principal: Principal, operation: Operation) -> bool:
    """May `principal` do `operation` as far as its scopes go (ownership is checked apart)?"""
    if principal.scopes is None:
        return True
    return any(principal.allows(scope) for scope in OPERATION_SCOPES[operation])


def require_scope(principal: Principal, operation: Operation) -> None:
    """403 unless the principal's scopes allow `operation`."""
    if not permits(principal, operation):
        needed = " or ".join(sorted(OPERATION_SCOPES[operation]))
        raise Forbidden(f"this token's scopes do not allow this: it needs the {needed} scope")


def parse_scopes(values: Iterable[object]) -> frozenset[Scope]:
    """Validate requested scope names (400 on an unknown one); an empty list is refused, as a
    token that may do nothing is a mistake (leave scopes out for full rights)."""
    scopes: set[Scope] = set()
    for value in values:
        if not isinstance(value, str) or value not in SCOPES:
            raise BadRequest(f"unknown scope {value!r}: scopes are {', '.join(SCOPES)}")
        scopes.add(value)  # type: ignore[arg-type]
    if not scopes:
        raise BadRequest("give at least one scope, or none at all for the user's full rights")
    return frozenset(scopes)


def encode_scopes(scopes: frozenset[str] | None) -> str:
    """The stored form: "" for full rights, else the names in the canonical order, comma-joined."""
    if scopes is None:
        return ""
    return ",".join(scope for scope in SCOPES if scope in scopes)


def decode_scopes(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    return frozenset(raw.split(","))


def ordered(scopes: frozenset[str] | None) -> list[str] | None:
    """Scopes for display, in the canonical order (None: full rights)."""
    if scopes is None:
        return None
    return [scope for scope in SCOPES if scope in scopes]
