"""An in-process hook for tests: records events, vetoes pre-terminate of 'keep' files."""

from __future__ import annotations

from typing import Any

from tusserver.errors import HookRejected

EVENTS: list[tuple[str, str]] = []


def record(event: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    EVENTS.append((event, payload["upload"]["id"]))
    if event == "pre-terminate" and payload["upload"]["metadata"].get("filename") == "keep":
        raise HookRejected("this file is kept", status=403)
    if event == "pre-create":
        return {"metadata": {**payload["upload"]["metadata"], "seen": "1"}}
    return None
