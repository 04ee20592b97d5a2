"""Index rebuild and orphan sweep: what the bucket holds, upload by upload, in key order."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

from ...errors import BackendUnavailable
from ...models import Part, UploadInfo
from ...protocol import is_upload_id
from .client import (
    INFO_NAME,
    PART_NAME_DIGITS,
    S3Connection,
)

log = logging.getLogger(__name__)

_PART_NAME = re.compile(f"([0-9]{{{PART_NAME_DIGITS}}})(?:\\.([0-9a-f]{{1,32}}))?")
"""A part object's name: its start offset, and the write attempt that stored it (if any)."""


def contiguous_parts(parts: Iterable[Part]) -> tuple[Part, ...]:
    """The run of `parts` that starts at 0 and continues without a gap or an overlap.

    Used to rebuild an index from a bucket listing, where orphans of failed writes sit between
    committed parts. Only bytes that are certainly contiguous may count towards the offset, so
    the run stops at the first gap and at the first part that overlaps the run; of two parts
    starting at the same offset the first one given is kept. Empty parts carry nothing and are
    skipped.
    """
    run: list[Part] = []
    taken: set[int] = set()
    expected = 0
    for part in sorted(parts, key=lambda p: p.start):  # stable: duplicates keep their order
        if part.size <= 0 or part.start in taken:
            continue
        if part.start != expected:
            break  # a gap (start > expected) or an overlap (start < expected)
        run.append(part)
        taken.add(part.start)
        expected = part.end
    return tuple(run)


class S3Index(S3Connection):
    """Lists what the bucket holds: for `rebuild-index` and the orphan sweep."""

    def stored_uploads(self) -> Iterator[tuple[str, float]]:
        """(id, newest object's time) of every upload in the bucket, in key order."""
        current: str | None = None
        newest = 0.0
        for upload_id, _name, _size, modified in self._list_upload_objects():
            if upload_id != current:
                if current is not None:
                    yield current, newest
                current, newest = upload_id, 0.0
            newest = max(newest, modified)
        if current is not None:
            yield current, newest

    # -- index rebuild ------------------------------------------------------------------------

    def scan(self) -> Iterator[tuple[UploadInfo, tuple[Part, ...]]]:
        """Every upload found in the bucket: its info.json and all its part objects, sorted.

        For `rebuild-index` after a loss of the state store. The parts are everything found
        (orphans included); `contiguous_parts` picks the run that is safe to commit. One pass over
        the listing, which S3 returns in key order, so the objects of one upload arrive together
        and only one upload's part list is held at a time. Keys that are not ours are skipped.
        """
        current: str | None = None
        has_info = False
        parts: list[Part] = []
        for upload_id, name, size, _modified in self._list_upload_objects():
            if upload_id != current:
                if current is not None and has_info:
                    yield from self._scanned(current, parts)
                current, has_info, parts = upload_id, False, []
            if name == INFO_NAME:
                has_info = True
            elif match := _PART_NAME.fullmatch(name):
                parts.append(Part(int(match.group(1)), size, match.group(2) or ""))
        if current is not None and has_info:
            yield from self._scanned(current, parts)

    def _list_upload_objects(self) -> Iterator[tuple[str, str, int, float]]:
        """(upload id, object name, size, mtime) of every object that looks like one of ours."""
        prefix_length = len(self.prefix)
        listing = iter(self._call("list bucket", lambda: self._list(self.prefix)))
        while True:
            obj = self._call("list bucket", lambda: next(listing, None))
            if obj is None:
                return
            key = obj.object_name or ""
            upload_id, slash, name = key[prefix_length:].partition("/")
            if not slash or not is_upload_id(upload_id):
                continue
            if name == INFO_NAME or _PART_NAME.fullmatch(name):
                modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
                yield upload_id, name, obj.size or 0, modified

    def _list(self, prefix: str) -> Iterator[Any]:
        return self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)

    def _scanned(
        self, upload_id: str, parts: list[Part]
    ) -> Iterator[tuple[UploadInfo, tuple[Part, ...]]]:
        try:
            info = self.load_info(upload_id)
        except BackendUnavailable:
            log.warning("skipping upload %s: its info.json cannot be read", upload_id)
            return
        if info.id != upload_id:
            log.warning("skipping upload %s: its info.json names %s", upload_id, info.id)
            return
        yield info, tuple(sorted(parts, key=lambda p: p.start))
