"""Hook points: what the service tells the outside world, and what it lets the outside veto.

The service calls `before(event, info)` for blocking events (pre-create, pre-terminate): the hook
may reject (raise `HookRejected` or `HookFailed`) or, for pre-create, return new metadata. It
calls `after(event, info)` for the post-* events, which never affect the client.
"""

from __future__ import annotations

from typing import Protocol

from .models import UploadInfo

BLOCKING_EVENTS = ("pre-create", "pre-terminate")


class Hooks(Protocol):
    """Receives upload events."""

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        """A blocking event; returns replacement metadata or None, raises to reject."""

    def after(self, event: str, info: UploadInfo) -> None:
        """A notification; must not raise."""


class NoHooks:
    """The default: nothing listens."""

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        return None

    def after(self, event: str, info: UploadInfo) -> None:
        return None
