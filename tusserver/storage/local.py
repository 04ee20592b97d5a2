"""The local-directory data store: one file per upload, written in place at its offset."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .. import backend_status
from ..errors import BackendUnavailable, TooLarge
from ..models import UploadInfo, WriteResult
from ..offload import WriteBehind, blocking
from ..protocol import is_upload_id
from ..splice import Filled, Moved, Pipe, Pipes, Unsupported
from .writeback import start_writeback

log = logging.getLogger(__name__)

INLINE_WRITE_MAX = 64 * 1024
"""A chunk this small (a slow sender's: see `wsgi_input.SLOW_WAKE`) is written by the event loop
itself, not the thread pool: copying it into the page cache takes microseconds, while handing
it to a thread woke that thread, which then had to take the GIL from the event loop, several
times per call. With 2,000 uploads trickling 16 KiB/s (1,000 such writes a second) those
hand-offs were a quarter of the time the event loop held the GIL and a fifth of the server's
CPU per byte (`bench/slow_clients.py`). Its writeback is left to the `fdatasync` at the end of
the request; larger chunks, and every `fdatasync`, still go to the pool."""

READ_BLOCK = 1024 * 1024


class LocalStore:
    """Upload `<id>` is the file `<directory>/<id>`.

    A write goes to the file at the attempt's offset and never truncates: bytes past the
    committed offset (left by an interrupted or rejected attempt) are harmless, because reads
    stop at the committed offset and the next attempt overwrites them, while a truncate by a
    stale writer could cut bytes another writer committed meanwhile. With `fsync` on (the
    default) the file is fsync'd before `write` returns, so the offset the service then commits
    survives a crash.
    """

    name = "local"
    keeps_parts = False

    def __init__(self, directory: Path, fsync: bool = True, splice: bool = True):
        self.directory = Path(directory)
        self.fsync = fsync
        self.splice = splice
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, info: UploadInfo) -> Path:
        # Ids are validated 32-hex strings before they get here; never a client path.
        return self.directory / info.id

    def check(self) -> None:
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise BackendUnavailable(f"data directory is not writable: {self.directory.name}")

    def create(self, info: UploadInfo) -> None:
        try:
            fd = os.open(self._path(info), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.close(fd)
            if self.fsync:
                blocking(self._fsync_directory)
        except OSError as exc:
            raise _unavailable("create", exc) from exc

    def write(
        self, info: UploadInfo, chunks: Iterable[bytes], attempt: str | None = None
    ) -> WriteResult:
        """Write the chunks in place from `info.offset`; with `fsync`, durable on return.

        A request body that can be spliced (a fast sender's, see `BodyReader.pieces`)
        moves socket -> pipe -> file in the kernel: one copy instead of two and no buffer in
        the process, done by one pool thread per piece through `_FileSink` (which also ends
        the write after the body's last byte). Other chunks (a body whose checksum needs the
        bytes, the test client's) are written by the thread pool under the gevent worker (a
        write stalled by dirty-page throttling must not stall other connections), each while
        the next chunk is received (`WriteBehind`); a slow sender's small chunk is copied by
        the event loop itself
        (`INLINE_WRITE_MAX`). Only bytes whose write finished count as written. One
        `fdatasync` at the end: the data and the file size, which is all a later read needs
        (the offset itself lives in the state store).
        """
        try:
            fd = os.open(self._path(info), os.O_WRONLY | os.O_CREAT, 0o640)
        except OSError as exc:
            raise _unavailable("open", exc) from exc
        behind = WriteBehind()
        position = info.offset
        written = spliced = 0
        pipes = Pipes()
        finishing = False  # the last write was sent off with the fdatasync and close
        sink = _FileSink(fd, info.offset, self.fsync, behind)
        try:
            for piece in self._pieces(chunks, pipes, sink):
                if isinstance(piece, Moved):  # already in the file (see `BodyReader.pieces`)
                    behind.wait()
                    position += piece.count
                    spliced += piece.count
                    written = position - info.offset
                    finishing = piece.finished
                    continue
                finishing = _at_end(chunks)
                flush = self.fsync and not finishing  # a last write is fdatasync'd at once
                if isinstance(piece, Filled):
                    job, args = _drain, (piece.pipe, fd, position, piece.count, flush)
                    spliced += piece.count
                else:
                    job, args = _write_all, (fd, piece, position, flush)
                small = job is _write_all and len(piece) <= INLINE_WRITE_MAX
                if finishing:
                    # Without an fdatasync, a small last write and the close are cheaper here
                    # than a hand-off: a small PATCH with fsync off never waits for the pool.
                    inline = small and not self.fsync
                    behind.submit(_write_and_finish, job, args, fd, self.fsync, inline=inline)
                elif small:
                    # A slow sender's chunk: copied here, its writeback left to the fdatasync.
                    behind.submit(_write_all, fd, piece, position, False, inline=True)
                else:
                    behind.submit(job, *args)
                written = position - info.offset  # every write before this one is done
                position += piece.count if isinstance(piece, Filled) else len(piece)
            behind.wait()
            written = position - info.offset
        except OSError as exc:
            behind.then(sink.clean_up, pipes, finishing)
            raise _unavailable("write", exc) from exc
        except BaseException:
            # Never close a file or pipe under a write still running.
            behind.then(sink.clean_up, pipes, finishing)
            raise
        pipes.close()
        if not finishing:
            try:
                blocking(_finish, fd, self.fsync)
            except OSError as exc:
                raise _unavailable("write", exc) from exc
        return WriteResult(written, spliced=min(spliced, written))

    def _pieces(
        self, chunks: Iterable[bytes], pipes: Pipes, sink: _FileSink
    ) -> Iterator[bytes | Filled | Moved]:
        """The body as pieces: chunks to write, pipes filled from the socket to drain, or
        bytes already moved into the file through `sink`.

        A request body that can be spliced (`BodyReader.pieces`) moves from the socket to the
        file without passing through Python; anything else (a hashed body, the test client, a
        chunked body) is chunks to write.
        """
        can_splice = getattr(chunks, "can_splice", None)
        if self.splice and can_splice is not None and can_splice():
            return chunks.pieces(pipes, sink)  # type: ignore[attr-defined, no-any-return]
        return iter(chunks)

    def discard(self, info: UploadInfo, result: WriteResult, exclusive: bool = False) -> None:
        """Cut the file back to the committed offset, only while the caller holds the lock.

        Without the lock, `info.offset` may be below what another writer committed since, so the
        file is left alone: uncommitted bytes past the offset are never read anyway.
        """
        if exclusive and result.bytes_written:
            with contextlib.suppress(FileNotFoundError):
                blocking(os.truncate, self._path(info), info.offset)

    def read(self, info: UploadInfo, start: int, end: int) -> Iterator[bytes]:
        try:
            handle = open(self._path(info), "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as exc:
            raise _unavailable("open", exc) from exc
        try:
            handle.seek(start)
            remaining = end - start
            while remaining > 0:
                block = handle.read(min(READ_BLOCK, remaining))
                if not block:
                    raise BackendUnavailable(f"upload {info.id} is shorter than its offset")
                remaining -= len(block)
                yield block
        finally:
            handle.close()

    def local_path(self, info: UploadInfo) -> Path | None:
        return self._path(info)

    def open_file(self, info: UploadInfo) -> BinaryIO:
        try:
            return open(self._path(info), "rb")
        except OSError as exc:
            raise _unavailable("open", exc) from exc

    def stored_uploads(self) -> Iterator[tuple[str, float]]:
        try:
            entries = list(os.scandir(self.directory))
        except OSError as exc:
            raise _unavailable("list", exc) from exc
        for entry in entries:
            if is_upload_id(entry.name):
                with contextlib.suppress(OSError):
                    yield entry.name, entry.stat().st_mtime

    def save_info(self, info: UploadInfo) -> None:
        """Nothing to do: the local store relies on the state store alone."""

    def delete(self, info: UploadInfo) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(info).unlink()

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, chunk: bytes, position: int, flush: bool = False) -> None:
    """Write the whole chunk at `position`; with `flush`, start writing it to the disk now.

    Starting the writeback of each chunk as it is written (`sync_file_range`) lets the disk
    work while the rest of the body arrives, so the `fdatasync` at the end of the request has
    little left to wait for. It promises nothing by itself: durability is that fdatasync's.
    """
    start = position
    view = memoryview(chunk)
    while view:
        count = os.pwrite(fd, view, position)
        view = view[count:]
        position += count
    if flush and position > start:
        start_writeback(fd, start, position - start)


def _drain(pipe: Pipe, fd: int, position: int, count: int, flush: bool = False) -> None:
    """Write a pipe's `count` bytes at `position` (splice, or copying where the file refuses);
    with `flush`, start writing them to the disk now (see `_write_all`)."""
    try:
        pipe.drain_to(fd, position, count)
    except Unsupported:
        pipe.drain_copying(fd, position, count)
    if flush and count:
        start_writeback(fd, position, count)


class _FileSink:
    """Where `DirectInput.move` writes a fast sender's body: the upload's file (`splice.Sink`).

    The moving runs as the write's call in flight (`WriteBehind.call`), so the write's clean-up
    (`behind.then`) never closes the file or a pipe under it. `finishing` is set before
    `finish` runs, which closes the file whatever happens: the clean-up must then not close it
    again.
    """

    def __init__(self, fd: int, offset: int, fsync: bool, behind: WriteBehind):
        self.fd, self.offset, self.fsync = fd, offset, fsync
        self.behind = behind
        self.finishing = False

    def run(self, fn: Callable[..., Moved], *args: Any) -> Moved:
        return self.behind.call(fn, *args)

    def clean_up(self, pipes: Pipes, finished: bool) -> None:
        """After a failed write, once nothing runs: close the pipes, and the file unless the
        write's last job (`finished`) or `finish` already closed it."""
        _close(None if finished or self.finishing else self.fd, pipes)

    def drain(self, pipe: Pipe, start: int, count: int) -> None:
        _drain(pipe, self.fd, self.offset + start, count, self.fsync)

    def finish(self) -> None:
        self.finishing = True
        _finish(self.fd, self.fsync)


def _close(fd: int | None, pipes: Pipes) -> None:
    pipes.close()
    if fd is not None:
        os.close(fd)


def _at_end(chunks: Iterable[bytes]) -> bool:
    """True if the body has brought all its bytes (so the piece just taken is the last)."""
    return bool(getattr(chunks, "at_end", False))


def _write_and_finish(job: Callable[..., None], args: tuple[Any, ...], fd: int, sync: bool) -> None:
    """The last write of a body, then its fdatasync and close: one trip to the thread pool.

    Every hand-off to the pool costs two wake-ups, each a wait for a core on a busy machine;
    a small PATCH paid two of them (its one write, then the fdatasync), a large one the extra
    one at the end.
    """
    try:
        job(*args)
    except BaseException:
        os.close(fd)
        raise
    _finish(fd, sync)


def _finish(fd: int, sync: bool) -> None:
    """The end of a write, in one trip to the thread pool: fdatasync, then close.

    Closing after a large write can itself flush (ext4's auto_da_alloc), hence off the loop.
    """
    try:
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _unavailable(action: str, exc: OSError) -> Exception:
    """Translate an OS error into the catalogue; a full disk is the client's 'too large'."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TooLarge("the server is out of storage space for this upload")
    backend_status.failed(backend_status.STORAGE, f"local store {action} failed: {exc}")
    return BackendUnavailable(f"storage {action} failed")
