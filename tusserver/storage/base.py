"""The contract every data store fulfils, so the service never knows where bytes live.

A store keeps the bytes of uploads; the state store (Redis) keeps everything else. The service
calls `write` while it holds the upload's lock, and only after `write` returns (bytes durable)
does it advance the offset in the state store, fenced by the lock token: data before state
(docs/architecture.md, "Invariants").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from ..models import UploadInfo, WriteResult


@runtime_checkable
class DataStore(Protocol):
    """Where the bytes of uploads live."""

    name: str
    keeps_parts: bool
    """True when the store cuts uploads into parts whose index the state store must keep."""

    def check(self) -> None:
        """Raise `BackendUnavailable` if the store cannot be used right now (health, start-up)."""

    def create(self, info: UploadInfo) -> None:
        """Prepare an empty upload (and record `info` where the store keeps a copy)."""

    def write(
        self, info: UploadInfo, chunks: Iterable[bytes], attempt: str | None = None
    ) -> WriteResult:
        """Store `chunks` at `info.offset` and make them durable before returning.

        `attempt` names this write attempt (random when None): objects it creates are its own,
        so a stale attempt never overwrites or deletes what another attempt committed. A write
        never destroys bytes below `info.offset`. `chunks` may end early (the client went away):
        store what arrived and return normally. A backend failure before anything was durable
        raises `BackendUnavailable`; after a durable prefix it returns that prefix with
        `failure` set.
        """

    def discard(self, info: UploadInfo, result: WriteResult, exclusive: bool = False) -> None:
        """Forget an attempt that will not be committed: remove only what it created.

        `exclusive`: the caller still holds the upload's lock (just refreshed), so `info.offset`
        is the committed offset and bytes past it may be cut; without it nothing below the
        attempt's own objects may be touched.
        """

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        """Yield the committed bytes `[start, end)` in bounded chunks.

        Backend resources are released when the iterator is exhausted or closed.
        """

    def local_path(self, info: UploadInfo) -> Path | None:
        """The file holding the upload's bytes, for sendfile; None when not on local disk."""

    def open_file(self, info: UploadInfo) -> BinaryIO:
        """The open file of a local upload (sendfile); `BackendUnavailable` when it is missing."""

    def stored_uploads(self) -> Iterator[tuple[str, float]]:
        """(upload id, time of the newest byte or object) of everything stored: orphan sweep."""

    def save_info(self, info: UploadInfo) -> None:
        """Keep a copy of the upload's info beside its bytes (to rebuild a lost index)."""

    def delete(self, info: UploadInfo) -> None:
        """Remove every byte and object of the upload, including leftovers of failed writes."""
