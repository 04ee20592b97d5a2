"""The contract every data store passes (DESIGN.md "Data stores", invariants 1 and 2).

The tests drive a store the way the service does: write at `info.offset`, and only when a write
is to be committed carry its result into the next info
(`offset += bytes_written`, `parts += result.parts`). Reads then see committed bytes only.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator

import pytest

from tusserver.models import UploadInfo, WriteResult, new_upload_id
from tusserver.storage.base import DataStore

StoredKeys = Callable[[DataStore, UploadInfo], dict[str, int]]
StoredBytes = Callable[[DataStore, UploadInfo], int]

PART = 64 * 1024  # the S3 part size used by the fixtures; irrelevant to the local store


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    """The body as a request reader yields it: bounded chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def new_info(store: DataStore, length: int | None = None) -> UploadInfo:
    now = time.time()
    info = UploadInfo(id=new_upload_id(), length=length, created=now, updated=now)
    store.create(info)
    return info


def commit(info: UploadInfo, result: WriteResult) -> UploadInfo:
    """What the service records after a successful write (data before state)."""
    return info.evolve(offset=info.offset + result.bytes_written, parts=info.parts + result.parts)


def append(store: DataStore, info: UploadInfo, chunks: Iterable[bytes]) -> UploadInfo:
    return commit(info, store.write(info, chunks))


def read_all(store: DataStore, info: UploadInfo, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(info, start, info.offset if end is None else end))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_store_is_usable(store: DataStore) -> None:
    store.check()
    assert isinstance(store, DataStore)
    assert store.name in ("local", "s3")


def test_create_write_read_back(store: DataStore) -> None:
    data = random_bytes(200_000)
    info = new_info(store, len(data))

    result = store.write(info, chunked(data, 7_777))
    info = commit(info, result)

    assert result.bytes_written == 200_000
    if store.keeps_parts:
        assert sum(part.size for part in result.parts) == 200_000
    else:
        assert result.parts == ()
    assert sha256(read_all(store, info)) == sha256(data)


def test_new_upload_reads_empty(store: DataStore) -> None:
    info = new_info(store, 10)

    assert list(store.read(info, 0, 0)) == []


def test_appends_at_increasing_offsets(store: DataStore) -> None:
    pieces = [random_bytes(70_000), random_bytes(1), random_bytes(100_000), random_bytes(PART)]
    info = new_info(store, sum(map(len, pieces)))

    offsets = []
    for piece in pieces:
        offsets.append(info.offset)
        info = append(store, info, chunked(piece, 16_384))

    assert offsets == [0, 70_000, 70_001, 170_001]
    assert info.offset == 170_001 + PART
    assert read_all(store, info) == b"".join(pieces)
    if store.keeps_parts:
        starts = [part.start for part in info.parts]
        assert starts == sorted(starts) and starts[0] == 0
        assert all(a.end == b.start for a, b in zip(info.parts, info.parts[1:], strict=False))


def test_write_ending_early_keeps_what_arrived(store: DataStore) -> None:
    data = random_bytes(1_000_000)
    info = new_info(store, len(data))

    def client_goes_away() -> Iterator[bytes]:
        yield data[:30_000]
        yield data[30_000:60_000]
        yield data[60_000:90_000]
        # the connection dropped: the body reader ends the stream cleanly

    result = store.write(info, client_goes_away())
    info = commit(info, result)

    assert result.bytes_written == 90_000
    assert read_all(store, info) == data[:90_000]
    # and the upload resumes from there
    info = append(store, info, chunked(data[90_000:], 50_000))
    assert info.offset == len(data)
    assert sha256(read_all(store, info)) == sha256(data)


def test_rewrite_at_same_offset_replaces_uncommitted_write(store: DataStore) -> None:
    first = random_bytes(50_000)
    info = new_info(store, 500_000)
    info = append(store, info, [first])

    # A write that is never committed (say the process died before the state update) ...
    lost = store.write(info, chunked(b"B" * 200_000, 10_000))
    assert lost.bytes_written == 200_000
    # ... then the client's retry at the same offset, shorter, is committed.
    retry = b"C" * 100_000
    info = append(store, info, chunked(retry, 10_000))

    content = read_all(store, info)
    assert info.offset == 150_000
    assert content == first + retry
    assert content.count(b"B") == first.count(b"B")  # not one byte of the lost write


def test_discard_forgets_a_write(
    store: DataStore, stored_bytes: StoredBytes, stored_keys: StoredKeys
) -> None:
    first = random_bytes(80_000)
    info = new_info(store, 1_000_000)
    info = append(store, info, [first])
    kept = stored_keys(store, info)

    rejected = store.write(info, chunked(b"X" * 150_000, 30_000))  # e.g. checksum mismatch
    assert stored_bytes(store, info) == 230_000
    store.discard(info, rejected, exclusive=True)  # the writer still holds the lock

    assert stored_bytes(store, info) == 80_000
    assert stored_keys(store, info) == kept
    assert read_all(store, info) == first
    info = append(store, info, [b"ok"])
    assert read_all(store, info) == first + b"ok"


def test_a_stale_writer_never_destroys_committed_bytes(store: DataStore) -> None:
    """Issue 10, defect 1: a writer that lost its lock writes and aborts at an old offset."""
    data = random_bytes(3 * PART + 500)
    info = new_info(store, len(data))
    stale = info  # a writer that read offset 0, then lost its lock before writing
    info = append(store, info, chunked(data[: 2 * PART], 10_000))  # the new holder commits

    late = store.write(stale, [b"S" * 1000])  # the stale writer's bytes arrive late
    store.discard(stale, late)  # its commit is refused (fenced): it aborts without the lock

    if store.keeps_parts:  # the late attempt's objects are its own, and now removed
        assert read_all(store, info) == data[: 2 * PART]
    else:  # one file written in place: the late bytes overwrite, but nothing is cut
        assert len(read_all(store, info)) == 2 * PART
    info = append(store, info, [data[2 * PART :]])
    assert info.offset == len(data)


def test_discard_of_empty_write_is_harmless(store: DataStore) -> None:
    info = new_info(store, 10)
    info = append(store, info, [b"12345"])

    store.discard(info, WriteResult(0))

    assert read_all(store, info) == b"12345"


def test_zero_byte_write(store: DataStore, stored_bytes: StoredBytes) -> None:
    info = new_info(store, 100)

    assert store.write(info, []) == WriteResult(0, ())
    assert store.write(info, [b"", b""]) == WriteResult(0, ())
    assert stored_bytes(store, info) == 0
    assert list(store.read(info, 0, 0)) == []


@pytest.fixture
def two_writes(store: DataStore) -> tuple[DataStore, UploadInfo, bytes]:
    """200 000 committed bytes from two writes, so part boundaries fall at uneven offsets."""
    data = random_bytes(200_000)
    info = new_info(store, len(data))
    info = append(store, info, chunked(data[:70_000], 9_000))
    info = append(store, info, chunked(data[70_000:], 9_000))
    return store, info, data


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 200_000),  # full
        (0, 1),  # first byte
        (199_999, 200_000),  # last byte
        (PART, PART + 1),  # single byte at a part start
        (1_000, 5_000),  # inside one part
        (PART - 10, PART + 10),  # across a part boundary
        (69_990, 70_010),  # across the boundary between the two writes
        (70_000, 135_536),  # exactly one part of the second write
        (12_345, 187_654),  # many parts, unaligned at both ends
        (50_000, 50_000),  # empty
    ],
)
def test_read_ranges(two_writes: tuple[DataStore, UploadInfo, bytes], start: int, end: int) -> None:
    store, info, data = two_writes

    assert read_all(store, info, start, end) == data[start:end]


def test_read_yields_bounded_chunks(two_writes: tuple[DataStore, UploadInfo, bytes]) -> None:
    store, info, data = two_writes

    chunks = list(store.read(info, 0, info.offset))

    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= 1024 * 1024 for chunk in chunks)


def test_read_closed_early_releases_resources(
    two_writes: tuple[DataStore, UploadInfo, bytes],
) -> None:
    store, info, data = two_writes

    for _ in range(40):  # more than any connection pool or sane file-handle budget per test
        reader = store.read(info, 100, info.offset)
        first = next(reader)
        reader.close()  # the consumer (a download) went away
        assert len(first) > 0 and first == data[100 : 100 + len(first)]
    reader = store.read(info, 0, 10)
    reader.close()  # closed before it started: nothing to release, no error

    assert read_all(store, info) == data


def test_delete_removes_everything(
    store: DataStore, stored_keys: StoredKeys, stored_bytes: StoredBytes
) -> None:
    info = new_info(store, 1_000_000)
    info = append(store, info, chunked(random_bytes(150_000), 50_000))
    discarded = store.write(info, [random_bytes(70_000)])
    store.discard(info, discarded)
    store.write(info, [random_bytes(140_000)])  # uncommitted: orphans on S3
    store.save_info(info)
    assert stored_bytes(store, info) >= 150_000

    store.delete(info)

    assert stored_keys(store, info) == {}
    store.delete(info)  # deleting again is not an error
    assert stored_keys(store, info) == {}


def test_delete_leaves_other_uploads_alone(store: DataStore) -> None:
    keep = new_info(store, 10)
    keep = append(store, keep, [b"keep me"])
    gone = new_info(store, 10)
    gone = append(store, gone, [b"drop me"])

    store.delete(gone)

    assert read_all(store, keep) == b"keep me"


def test_save_info_is_repeatable(store: DataStore) -> None:
    info = new_info(store, 10)
    info = append(store, info, [b"abc"])

    store.save_info(info)
    store.save_info(info.evolve(metadata={"filename": "x.bin"}))

    assert read_all(store, info) == b"abc"
