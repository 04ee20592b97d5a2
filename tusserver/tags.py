"""Tags and thumbnails: the two metadata values the file manager's catalog gives a meaning to.

One module validates them wherever they arrive (tus `Upload-Metadata` at creation, the JSON
upload API, `PATCH /api/uploads/<id>`), so every path accepts and rejects exactly the same values.
Both stay ordinary metadata (`tags` is comma-separated, `thumbnail` a data URL): HEAD returns
them, the stored info keeps them, and `rebuild-index` brings them back with the upload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .errors import InvalidMetadata

TAG_PATTERN = re.compile(r"[a-z0-9._-]{1,32}")
"""A tag: 1 to 32 of lower-case ASCII letters, digits, '-', '_' and '.'."""
TAG_MAX_LENGTH = 32
MAX_TAGS = 20
TAGS_KEY = "tags"

THUMBNAIL_KEY = "thumbnail"
THUMBNAIL_MAX = 2048
"""The largest thumbnail data URL accepted, in characters. A 64-pixel WebP/JPEG fits, and so
does the whole `Upload-Metadata` header (base64 of every value, 4096 bytes by default, and
within nginx's 8 KiB header buffers) with a name, type and tags beside it."""
THUMBNAIL_PREFIX = re.compile(r"data:image/(jpeg|webp|png);base64,[A-Za-z0-9+/]+={0,2}")


def valid_tags(tags: Iterable[object]) -> tuple[str, ...]:
    """The tags, checked and without duplicates (first occurrence order); 400 when any is bad."""
    result: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
            raise InvalidMetadata(
                f"a tag must be 1 to {TAG_MAX_LENGTH} of a-z, 0-9, '-', '_', '.' (got {tag!r:.60})"
            )
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise InvalidMetadata(f"at most {MAX_TAGS} tags per file")
    return tuple(result)


def parse_tags(value: str) -> tuple[str, ...]:
    """The tags of a comma-separated metadata value (blanks around commas ignored); 400 if bad."""
    return valid_tags(part.strip() for part in value.split(",") if part.strip())


def tags_of(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The valid tags recorded in metadata, never raising (for indexing what is stored)."""
    parts = (part.strip() for part in metadata.get(TAGS_KEY, "").split(","))
    unique = dict.fromkeys(p for p in parts if TAG_PATTERN.fullmatch(p))
    return tuple(unique)[:MAX_TAGS]


def with_tags(metadata: Mapping[str, str], tags: tuple[str, ...]) -> dict[str, str]:
    """A copy of metadata with `tags` recorded (the key is dropped when there are none)."""
    updated = dict(metadata)
    updated.pop(TAGS_KEY, None)
    if tags:
        updated[TAGS_KEY] = ",".join(tags)
    return updated


def checked_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Creation metadata with `tags` normalised and `thumbnail` checked; 400 when either is bad.

    Called before anything is created, so a bad value leaves nothing behind.
    """
    checked = dict(metadata)
    if TAGS_KEY in checked:
        checked = with_tags(checked, parse_tags(checked[TAGS_KEY]))
    thumbnail = checked.get(THUMBNAIL_KEY)
    if thumbnail is not None:
        if len(thumbnail) > THUMBNAIL_MAX:
            raise InvalidMetadata(f"thumbnail must be at most {THUMBNAIL_MAX} characters")
        if not THUMBNAIL_PREFIX.fullmatch(thumbnail):
            raise InvalidMetadata("thumbnail must be a base64 data URL of a JPEG, WebP or PNG")
    return checked
