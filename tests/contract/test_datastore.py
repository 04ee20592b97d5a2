"""The contract every data store passes (docs/architecture.md, "Data stores" and "Invariants").

The tests drive a store the way the service does: write at `info.offset`, and only when a write
is to be committed carry its result into the next info
(`offset += bytes_written`, `parts += result.parts`). Reads then see committed bytes only.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import os
import time
import typing
import warnings
from collections.abc import Callable, Iterator

import pytest

from tests.support.store import append, chunked, commit, new_info
from tusserver.models import UploadInfo, WriteResult
from tusserver.storage.base import DataStore

StoredKeys = Callable[[DataStore, UploadInfo], dict[str, int]]
StoredBytes = Callable[[DataStore, UploadInfo], int]

PART = 64 * 1024  # the S3 part size used by the fixtures; irrelevant to the local store


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def read_all(store: DataStore, info: UploadInfo, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(info, start, info.offset if end is None else end))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def protocol_methods() -> list[str]:
    """The methods the DataStore protocol declares (its own, not those of `Protocol`)."""
    return [
        name
        for name, member in vars(DataStore).items()
        if callable(member) and not name.startswith("_")
    ]


def test_store_is_usable(store: DataStore, request: pytest.FixtureRequest) -> None:
    store.check()  # a store that can be reached raises nothing

    assert store.name == request.node.callspec.params["store"]
    assert isinstance(store.keeps_parts, bool)


@pytest.mark.parametrize("method", protocol_methods())
def test_store_implements_the_protocol_signatures(store: DataStore, method: str) -> None:
    """Every protocol method exists with the protocol's parameters (names, kinds, defaults)
    and types, so the service can call any store the same way. (`isinstance` on a runtime
    checkable Protocol only checks that the names exist.)"""
    declared = getattr(DataStore, method)
    implemented = getattr(type(store), method)

    def shape(function: Callable[..., object]) -> list[tuple[str, object, object]]:
        return [
            (p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
        ]

    assert shape(implemented) == shape(declared)
    assert typing.get_type_hints(implemented) == typing.get_type_hints(declared)


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


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def connections_out(store: DataStore) -> int:
    """S3 connections taken from the store's urllib3 pools and not given back (0 locally).

    A pool's queue has one slot per connection it may keep; a connection that is out has
    taken its slot, and only `release_conn()` (or `close()`) of its response puts it back.
    """
    http = getattr(getattr(store, "client", None), "_http", None)
    if http is None:
        return 0
    pools = [http.pools[key] for key in http.pools.keys()]  # noqa: SIM118 - not a real dict
    return sum(pool.pool.maxsize - pool.pool.qsize() for pool in pools if pool.pool is not None)


def settle(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Wait for background work (an S3 read-ahead answer being closed) to finish."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_read_closed_early_releases_resources(
    two_writes: tuple[DataStore, UploadInfo, bytes],
) -> None:
    """A download that stops early gives its file or connection back: no descriptor is left
    open (local), no S3 connection stays out of its pool, the next part's read-ahead answer
    included, and nothing is left for the garbage collector to close (Python reports that as
    a ResourceWarning). moto serves S3 inside this process, so its own server-side sockets make
    a descriptor count meaningless for S3: the pool's count of connections out is the measure.
    """
    store, info, data = two_writes
    read_all(store, info)  # warm up: lazily made pools and threads are not leaks
    fds_before = open_fds()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(40):  # more than any connection pool holds
            reader = store.read(info, 100, info.offset)
            # Two blocks: taking the second one starts the S3 read-ahead of the next part.
            taken = next(reader) + next(reader, b"")
            reader.close()  # the consumer (a download) went away
            assert len(taken) > 0 and taken == data[100 : 100 + len(taken)]
        reader = store.read(info, 0, 10)
        reader.close()  # closed before it started: nothing to release, no error
        released = settle(lambda: connections_out(store) == 0)
        gc.collect()

    assert released, f"{connections_out(store)} S3 connection(s) never went back to the pool"
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    if store.local_path(info) is not None:
        assert open_fds() <= fds_before  # a leak adds; other threads may close theirs
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
