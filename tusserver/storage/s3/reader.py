"""Reading: a byte range streamed from the committed parts that cover it."""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from ...errors import BackendUnavailable
from ...models import Part, UploadInfo
from .client import (
    CLIENT_ERRORS,
    READ_AHEAD_THREADS,
    S3Connection,
    _unavailable,
)

log = logging.getLogger(__name__)

_CONTENT_RANGE_TOTAL = re.compile(r"/([0-9]+)\s*$")


class S3Reader(S3Connection):
    """Streams committed parts, fetching the next part while the current one streams."""

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        """Yield bytes `[start, end)` from the committed parts (`info.parts`) that cover them.

        Each covering part is fetched with a ranged GET for just the needed slice and streamed in
        blocks of `read_chunk_size`; the response is closed and its connection released in a
        `finally`, also when the consumer stops early and closes this generator.

        Once the consumer has taken the first block of a part, the GET of the next part is sent
        from a helper thread, so S3's time to answer a request overlaps the streaming of the
        current part instead of adding up part after part (with 8 MiB parts against a local
        server, that wait was a third of a download's time). A read closed before then never
        requests the next part; an answer nobody will read is closed as soon as it arrives.
        """
        if start >= end:
            return
        spans = self._spans(info, start, end)
        part, offset, length = next(spans)
        response = self._open_part(info.id, part, offset, length)
        while True:
            following: tuple[Part, int, int] | None = None
            upcoming: Future[Any] | None = None
            stream = self._stream_part(info.id, part, response, length)
            try:
                for block in stream:
                    yield block
                    if upcoming is None:
                        following, upcoming = self._open_next(info.id, spans)
                if upcoming is None:
                    following, upcoming = self._open_next(info.id, spans)
            except BaseException:
                if upcoming is not None:
                    _close_when_done(upcoming)
                raise
            finally:
                stream.close()
            if following is None:
                return
            part, offset, length = following
            response = upcoming.result()

    def _spans(self, info: UploadInfo, start: int, end: int) -> Iterator[tuple[Part, int, int]]:
        """(part, offset in the part, length) for each part covering `[start, end)`, in order."""
        parts = sorted(info.parts)
        starts = [part.start for part in parts]
        index = bisect.bisect_right(starts, start) - 1
        position = start
        while position < end:
            if (
                index < 0
                or index >= len(parts)
                or not (parts[index].start <= position < parts[index].end)
            ):
                log.error("upload %s has no committed part covering offset %d", info.id, position)
                raise BackendUnavailable(f"upload {info.id} has no stored bytes at {position}")
            part = parts[index]
            stop = min(end, part.end)
            yield part, position - part.start, stop - position
            position = stop
            index += 1

    def _open_next(
        self, upload_id: str, spans: Iterator[tuple[Part, int, int]]
    ) -> tuple[tuple[Part, int, int] | None, Future[Any]]:
        """The next span and a future of its opened response (or of the error it ran into)."""
        failed: Future[Any] = Future()
        try:
            span = next(spans, None)
        except BackendUnavailable as exc:  # a hole in the index: raised when its turn comes
            failed.set_exception(exc)
            return (Part(0, 0), 0, 0), failed
        if span is None:
            failed.set_result(None)
            return None, failed
        with self._read_ahead_lock:
            if self._read_ahead is None:
                self._read_ahead = ThreadPoolExecutor(
                    max_workers=READ_AHEAD_THREADS, thread_name_prefix="s3-read-ahead"
                )
        return span, self._read_ahead.submit(self._open_part, upload_id, *span)

    def _open_part(self, upload_id: str, part: Part, offset: int, length: int) -> Any:
        key = self.part_key(upload_id, part.start, part.attempt)
        return self._call(
            "read part",
            lambda: self.client.get_object(self.bucket, key, offset=offset, length=length),
        )

    def _stream_part(
        self, upload_id: str, part: Part, response: Any, length: int
    ) -> Iterator[bytes]:
        key = self.part_key(upload_id, part.start, part.attempt)
        try:
            total = _content_range_total(response.headers.get("Content-Range"))
            if total is not None and total != part.size:
                log.error("S3 %s holds %d bytes, the index says %d", key, total, part.size)
                raise BackendUnavailable("stored part does not match the upload index")
            remaining = length
            try:
                for block in response.stream(self.read_block):
                    if len(block) > remaining:
                        raise BackendUnavailable("S3 returned more bytes than requested")
                    remaining -= len(block)
                    yield block
            except CLIENT_ERRORS as exc:
                raise _unavailable("read part", exc) from None
            if remaining:
                log.error("S3 %s ended %d bytes early", key, remaining)
                raise BackendUnavailable("stored part is shorter than the upload index")
        finally:
            response.close()
            response.release_conn()

    def local_path(self, info: UploadInfo) -> Path | None:
        return None

    def open_file(self, info: UploadInfo) -> BinaryIO:
        raise BackendUnavailable("the S3 store keeps no local files")


def _close_when_done(upcoming: Future[Any]) -> None:
    """Close a read-ahead response nobody will read: now if it is there, else when it arrives."""

    def close(done: Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        response = done.result()
        if response is not None:
            response.close()
            response.release_conn()

    if not upcoming.cancel():
        upcoming.add_done_callback(close)


def _content_range_total(value: str | None) -> int | None:
    """The object size from a `Content-Range: bytes a-b/total` header, if there is one."""
    if not value:
        return None
    match = _CONTENT_RANGE_TOTAL.search(value)
    return int(match.group(1)) if match else None
