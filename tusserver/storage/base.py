"""The contract every data store fulfils, so the service never knows where bytes live.

A store keeps the bytes of uploads; the state store (Redis) keeps everything else. The service
calls `write` while it holds the upload's lock, and only after `write` returns (bytes durable)
does it advance the offset in the state store: data before state (DESIGN.md invariant 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

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

    def write(self, info: UploadInfo, chunks: Iterable[bytes]) -> WriteResult:
        """Store `chunks` at `info.offset` and make them durable before returning.

        `chunks` may end early (the client went away): store what arrived and return normally.
        Writing at the same offset again is safe: it replaces whatever an earlier, uncommitted
        attempt left there. Backend failures raise `BackendUnavailable`; bytes written before the
        failure are then simply never committed.
        """

    def discard(self, info: UploadInfo, result: WriteResult) -> None:
        """Forget a write that will not be committed (checksum mismatch, body too long)."""

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        """Yield the committed bytes `[start, end)` in bounded chunks.

        Backend resources are released when the iterator is exhausted or closed.
        """

    def local_path(self, info: UploadInfo) -> Path | None:
        """The file holding the upload's bytes, for sendfile; None when not on local disk."""

    def save_info(self, info: UploadInfo) -> None:
        """Keep a copy of the upload's info beside its bytes (to rebuild a lost index)."""

    def delete(self, info: UploadInfo) -> None:
        """Remove every byte and object of the upload, including leftovers of failed writes."""
