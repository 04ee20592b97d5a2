"""`GET /api/uploads` query parameters -> a `CatalogQuery`, or a 400 that names the bad one.

Filters combine (all must match): `q=` (case-insensitive substring of the file name), `tag=`
(repeatable: every tag must be present), `type=` (`image`, `image/` or `image/png`),
`complete=true|false`, `min_size=` / `max_size=` (bytes, inclusive; uploads of unknown length
never match a size filter), `since=` (inclusive) / `until=` (exclusive) on the creation time,
each ISO 8601 (`2026-12-01`, `2026-12-01T12:00:00Z`; no zone means UTC) or Unix seconds.
`sort=` is `name`, `size`, `created` or `updated`, ascending; a leading `-` sorts descending.
The default is `-created` (newest first).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from werkzeug.datastructures import MultiDict

from ..errors import BadRequest
from ..state.catalog import SORT_FIELDS, CatalogQuery, SortField, index_name
from ..tags import valid_tags

Q_MAX = 200
MAX_TAG_FILTERS = 20
SIZE_MAX = 2**63 - 1
_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*(/([a-z0-9][a-z0-9!#$&^_.+-]*)?)?")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")
FILTERS = ("q", "tag", "type", "complete", "min_size", "max_size", "since", "until", "sort")


def parse_query(args: MultiDict[str, str]) -> CatalogQuery:
    """The listing query the arguments ask for; 400 (nothing else happens) when one is bad."""
    q = args.get("q", "")
    if len(q) > Q_MAX:
        raise BadRequest(f"q must be at most {Q_MAX} characters")
    tags = args.getlist("tag")
    if len(tags) > MAX_TAG_FILTERS:
        raise BadRequest(f"at most {MAX_TAG_FILTERS} tag filters")
    try:
        tags = list(valid_tags(tags))
    except BadRequest as exc:
        raise BadRequest(f"tag: {exc.message}") from None
    kind = args.get("type", "").lower()
    if kind and not _TYPE.fullmatch(kind):
        raise BadRequest("type must be a MIME type (image/png) or major type (image or image/)")
    sort, descending = _sort(args.get("sort", "-created"))
    return CatalogQuery(
        q=index_name(q),
        tags=tuple(tags),
        type=kind.rstrip("/"),
        complete=_boolean(args, "complete"),
        min_size=_size(args, "min_size"),
        max_size=_size(args, "max_size"),
        since=_time(args, "since"),
        until=_time(args, "until"),
        sort=sort,
        descending=descending,
    )


def _sort(raw: str) -> tuple[SortField, bool]:
    field = raw[1:] if raw.startswith("-") else raw
    for known in SORT_FIELDS:
        if field == known:
            return known, raw.startswith("-")
    raise BadRequest("sort must be name, size, created or updated, with '-' for descending")


def _boolean(args: MultiDict[str, str], name: str) -> bool | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("true", "false"):
        raise BadRequest(f"{name} must be true or false")
    return raw == "true"


def _size(args: MultiDict[str, str], name: str) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > SIZE_MAX:
        raise BadRequest(f"{name} must be a whole number of bytes")
    return int(raw)


def _time(args: MultiDict[str, str], name: str) -> float | None:
    """ISO 8601 (no zone = UTC) or Unix seconds."""
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    if _NUMBER.fullmatch(raw):
        value = float(raw)
    else:
        try:
            moment = datetime.fromisoformat(raw.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = moment.timestamp()
        except (ValueError, OverflowError, OSError):
            raise BadRequest(f"{name} must be ISO 8601 or Unix seconds") from None
    if not math.isfinite(value) or abs(value) > 1e14:
        raise BadRequest(f"{name} is out of range")
    return value
