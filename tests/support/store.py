"""Driving a data store the way the service does, for the store contract tests.

Write at `info.offset`, and carry a write's result into the next info only when it is to be
committed (`offset += bytes_written`, `parts += result.parts`): data before state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from tusserver.models import UploadInfo, WriteResult, new_upload_id
from tusserver.storage.base import DataStore


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """The body as a request reader yields it: bounded chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def new_info(store: DataStore, length: int | None = None) -> UploadInfo:
    """A new, empty upload created in `store`."""
    now = time.time()
    info = UploadInfo(id=new_upload_id(), length=length, created=now, updated=now)
    store.create(info)
    return info


def commit(info: UploadInfo, result: WriteResult) -> UploadInfo:
    """What the service records after a successful write (data before state)."""
    return info.evolve(offset=info.offset + result.bytes_written, parts=info.parts + result.parts)


def append(store: DataStore, info: UploadInfo, chunks: Iterable[bytes]) -> UploadInfo:
    """Write `chunks` at the upload's offset and commit them."""
    return commit(info, store.write(info, chunks))
