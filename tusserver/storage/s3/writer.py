"""Writing: a request body cut into part objects named by offset and write attempt."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterable

from minio.deleteobjects import DeleteObject

from ...errors import BackendUnavailable
from ...models import Part, UploadInfo, WriteResult
from .client import (
    S3Connection,
)

log = logging.getLogger(__name__)


class S3Writer(S3Connection):
    """Stores a write attempt's bytes as part objects; removes attempts and whole uploads."""

    # -- bytes --------------------------------------------------------------------------------

    def write(
        self, info: UploadInfo, chunks: Iterable[bytes], attempt: str | None = None
    ) -> WriteResult:
        """Cut `chunks` into part objects starting at `info.offset`, each PUT acknowledged.

        At most one part is buffered: chunks fill a buffer up to the part size, a full buffer
        goes out as one PUT of exactly that length, and whatever is left when the chunks end
        (the client went away, or the body was shorter) goes out as a final shorter part.
        When a PUT fails after earlier ones were acknowledged, the acknowledged parts are
        returned with `failure` set, so the service can commit them (the client then resumes
        after them) instead of leaking them. Exceptions raised by `chunks` itself propagate
        untouched; parts already put are then orphans that are never read and that `delete`
        and the orphan sweep remove.
        """
        attempt = attempt or secrets.token_hex(8)
        parts: list[Part] = []
        try:
            self._write_parts(info, chunks, attempt, parts)
        except BackendUnavailable as exc:
            if not parts:
                raise
            return WriteResult(sum(p.size for p in parts), tuple(parts), failure=exc)
        return WriteResult(sum(part.size for part in parts), tuple(parts))

    def _write_parts(
        self, info: UploadInfo, chunks: Iterable[bytes], attempt: str, parts: list[Part]
    ) -> None:
        start = info.offset
        buffer = io.BytesIO()
        filled = 0
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            while view:
                take = min(self.part_size - filled, len(view))
                buffer.write(view[:take])
                filled += take
                view = view[take:]
                if filled == self.part_size:
                    parts.append(self._put_part(info.id, start, attempt, buffer))
                    start += filled
                    buffer, filled = io.BytesIO(), 0
        if filled:
            parts.append(self._put_part(info.id, start, attempt, buffer))

    def _put_part(self, upload_id: str, start: int, attempt: str, buffer: io.BytesIO) -> Part:
        # getvalue() hands the filled buffer over without copying it (CPython shares it),
        # so a part costs its own size in memory once, not twice.
        payload = buffer.getvalue()
        size = len(payload)
        self._call(
            "write part",
            lambda: self.client.put_object(
                self.bucket,
                self.part_key(upload_id, start, attempt),
                io.BytesIO(payload),
                size,
                # A known length at or below the part size: one plain PUT, never a multipart
                # upload (minio would otherwise split anything above 5 MiB into threads).
                part_size=max(size, 5 * 1024 * 1024),
            ),
        )
        return Part(start, size, attempt)

    def discard(self, info: UploadInfo, result: WriteResult, exclusive: bool = False) -> None:
        """Delete the part objects of a write that will not be committed.

        Best effort: the parts are orphans either way (never read, removed by `delete`), so a
        failure here is logged and must not hide the error that caused the discard.
        """
        if not result.parts:
            return
        keys = [self.part_key(info.id, part.start, part.attempt) for part in result.parts]
        try:
            self._remove(keys)
        except BackendUnavailable:
            log.warning(
                "S3 discard of %d part(s) of %s failed; left as orphans", len(keys), info.id
            )

    # -- removal ------------------------------------------------------------------------------

    def delete(self, info: UploadInfo) -> None:
        """Remove every object under the upload's prefix: committed parts, orphans, info.json.

        Listed first, then removed in batches, so a listing is never changed under its own
        continuation token.
        """
        prefix = self.upload_prefix(info.id)
        keys = self._call(
            "list upload",
            lambda: [
                obj.object_name
                for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if obj.object_name
            ],
        )
        self._remove(keys)

    def _remove(self, keys: list[str]) -> None:
        if not keys:
            return
        errors = self._call(
            "delete objects",
            lambda: list(
                self.client.remove_objects(self.bucket, (DeleteObject(key) for key in keys))
            ),
        )
        if errors:
            first = errors[0]
            log.error(
                "S3 could not delete %d object(s), first %s: %s %s",
                len(errors),
                first.name,
                first.code,
                first.message,
            )
            raise BackendUnavailable(f"storage delete failed ({first.code})")
