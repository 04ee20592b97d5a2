"""What a file event says: a small JSON document about one upload, never a secret.

An event names the upload, its owner, file name and type, tags, size and offset, and when it
happened. It never carries metadata values other than the file name, type and tags (metadata is the
client's and may hold anything), and never a credential: events are read by the upload's owner
and by admins, the same people who may list the upload.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from ..models import UploadInfo
from ..tags import tags_of

EventKind = Literal["created", "progress", "finished", "renamed", "tagged", "deleted"]
KINDS: tuple[EventKind, ...] = ("created", "progress", "finished", "renamed", "tagged", "deleted")


def event_payload(kind: EventKind, info: UploadInfo, now: float, **extra: Any) -> dict[str, Any]:
    """The event's JSON object (`extra`: e.g. `reason` of a deletion, `tags` of a tag change)."""
    payload: dict[str, Any] = {
        "type": kind,
        "id": info.id,
        "owner": info.owner,
        "filename": info.filename,
        "filetype": info.filetype,
        "size": info.length,
        "offset": info.offset,
        "complete": info.is_complete,
        "tags": list(tags_of(info.metadata)),
        "time": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
    }
    payload.update(extra)
    return payload
