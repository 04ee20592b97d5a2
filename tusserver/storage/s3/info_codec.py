"""The upload's info beside its parts: `info.json`, its codec, and the store's info methods."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import fields
from typing import Any

from ...errors import BackendUnavailable
from ...models import UploadInfo
from .client import (
    S3Connection,
)

log = logging.getLogger(__name__)


def info_to_dict(info: UploadInfo) -> dict[str, Any]:
    """The JSON-ready form of `info` stored as info.json (every field except `parts`).

    Parts are left out on purpose: the committed part list lives in the state store, and on a
    rebuild the parts are recovered from the part objects themselves.
    """
    data: dict[str, Any] = {}
    for item in fields(UploadInfo):
        if item.name == "parts":
            continue
        value = getattr(info, item.name)
        if item.name == "members":
            value = list(value)
        elif item.name in ("metadata", "metadata_binary", "digests"):
            value = dict(value)
        data[item.name] = value
    return data


def info_from_dict(data: dict[str, Any]) -> UploadInfo:
    """Rebuild an `UploadInfo` from `info_to_dict` output; unknown keys are ignored.

    Raises ValueError for a document that is not an upload's info, so a damaged or foreign
    info.json is skipped by `scan` instead of poisoning the rebuilt index.
    """
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("not an upload info document")

    def number(name: str, default: float | None) -> float | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        return float(value)

    def integer(name: str, default: int | None) -> int | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
        return value

    def text(name: str) -> str | None:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        return value

    metadata = data.get("metadata") or {}
    members = data.get("members") or []
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("metadata must be an object of strings")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError("members must be a list of strings")
    return UploadInfo(
        id=data["id"],
        length=integer("length", None),
        offset=integer("offset", 0) or 0,
        metadata=dict(metadata),
        created=number("created", 0.0) or 0.0,
        updated=number("updated", 0.0) or 0.0,
        expires=number("expires", None),
        completed=number("completed", None),
        owner=text("owner"),
        concat=text("concat"),
        members=tuple(members),
        metadata_binary=_string_map(data.get("metadata_binary"), "metadata_binary"),
        digests=_string_map(data.get("digests"), "digests"),
    )


def _string_map(value: Any, name: str) -> dict[str, str]:
    """An optional JSON object of strings (fields added after the first info.json format)."""
    value = value or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{name} must be an object of strings")
    return dict(value)


class S3InfoStore(S3Connection):
    """Keeps each upload's info as `<prefix><id>/info.json`, so a lost index can be rebuilt."""

    # -- info ---------------------------------------------------------------------------------

    def create(self, info: UploadInfo) -> None:
        self.save_info(info)

    def save_info(self, info: UploadInfo) -> None:
        payload = json.dumps(info_to_dict(info), separators=(",", ":")).encode()
        self._call(
            "save info",
            lambda: self.client.put_object(
                self.bucket,
                self.info_key(info.id),
                io.BytesIO(payload),
                len(payload),
                content_type="application/json",
            ),
        )

    def load_info(self, upload_id: str) -> UploadInfo:
        """The info.json of one upload (parts empty)."""
        raw = self._get_small(self.info_key(upload_id))
        try:
            return info_from_dict(json.loads(raw))
        except ValueError as exc:
            log.error("S3 %s is not valid: %s", self.info_key(upload_id), exc)
            raise BackendUnavailable("stored upload info is damaged") from None
