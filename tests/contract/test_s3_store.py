"""What only the S3 store does: part objects, ranged reads, outages, start-up, index rebuild."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import moto.settings
import pytest

from tests.support.live import free_port
from tests.support.s3 import (
    SpyClient,
    drop_bucket,
    make_s3_settings,
    object_sizes,
    start_moto_server,
    unique_bucket,
)
from tests.support.store import chunked, commit, new_info
from tusserver.errors import BackendUnavailable
from tusserver.models import Part, UploadInfo, WriteResult, new_upload_id
from tusserver.storage.s3 import (
    S3Store,
    StorageConfigError,
    contiguous_parts,
    info_from_dict,
    info_to_dict,
    parse_endpoint,
)

P = 64 * 1024  # the part size of the `make_s3_store` stores
MakeStore = Callable[..., S3Store]


ATTEMPT_SUFFIX = re.compile(r"\.[0-9a-f]{16}$")


def part_objects(store: S3Store, info: UploadInfo) -> dict[str, int]:
    """The upload's part objects as {start offset: size}, info.json left out.

    Keys end in the write attempt's name (`.<16 hex>`); these tests look at the layout, so it is
    cut off (one attempt per offset here).
    """
    prefix = store.upload_prefix(info.id)
    return {
        unattempted(key[len(prefix) :]): size
        for key, size in object_sizes(store, prefix).items()
        if not key.endswith("/info.json")
    }


def unattempted(key: str) -> str:
    return ATTEMPT_SUFFIX.sub("", key)


def plain(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    """Parts without their attempt names, to compare layouts."""
    return tuple(Part(part.start, part.size) for part in parts)


# -- part layout --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1, [(0, 1)]),
        (P - 1, [(0, P - 1)]),
        (P, [(0, P)]),
        (P + 1, [(0, P), (P, 1)]),
        (3 * P + P // 2, [(0, P), (P, P), (2 * P, P), (3 * P, P // 2)]),
    ],
    ids=["1B", "part-1", "part", "part+1", "3.5parts"],
)
@pytest.mark.parametrize("offset", [0, 1000])
def test_patch_sizes_make_these_parts(
    make_s3_store: MakeStore, size: int, expected: list[tuple[int, int]], offset: int
) -> None:
    store = make_s3_store()
    info = new_info(store, offset + size)
    if offset:
        info = commit(info, store.write(info, [b"a" * offset]))
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)

    result = store.write(info, chunked(data, 10_000))
    info = commit(info, result)

    want = [Part(offset + start, length) for start, length in expected]
    assert (result.bytes_written, plain(result.parts)) == (size, tuple(want))
    objects = part_objects(store, info)
    for part in want:
        assert objects[f"{part.start:020d}"] == part.size
    assert len(objects) == len(want) + (1 if offset else 0)
    assert b"".join(store.read(info, offset, info.offset)) == data


def test_chunks_larger_than_the_part_size(make_s3_store: MakeStore) -> None:
    store = make_s3_store()
    store.client = spy = SpyClient(store.client)
    info = new_info(store, 10 * P)
    data = bytes(range(251)) * (7 * P // 251 + 1)
    data = data[: 6 * P + 7]
    chunks = [data[: 2 * P + 5], data[2 * P + 5 : 2 * P + 8], data[2 * P + 8 :]]

    result = store.write(info, chunks)

    assert plain(result.parts) == (*(Part(i * P, P) for i in range(6)), Part(6 * P, 7))
    assert [length for name, length in spy.puts if name != "info.json"] == [P] * 6 + [7]
    info = commit(info, result)
    assert b"".join(store.read(info, 0, info.offset)) == data


def test_write_accepts_any_bytes_like_chunk(s3_store: S3Store) -> None:
    info = new_info(s3_store, 10)

    result = s3_store.write(info, [bytearray(b"abc"), memoryview(b"defg"), b"hij"])
    info = commit(info, result)

    assert (result.bytes_written, plain(result.parts)) == (10, (Part(0, 10),))
    assert b"".join(s3_store.read(info, 0, 10)) == b"abcdefghij"


def test_error_from_the_body_propagates_and_commits_nothing(s3_store: S3Store) -> None:
    info = new_info(s3_store, 10 * P)

    def body() -> Iterator[bytes]:
        yield b"x" * (P + 10)
        raise RuntimeError("body reader failed")

    with pytest.raises(RuntimeError, match="body reader failed"):
        s3_store.write(info, body())
    # the full part that was put is an orphan that delete removes
    assert part_objects(s3_store, info) == {f"{0:020d}": P}
    s3_store.delete(info)
    assert object_sizes(s3_store, s3_store.upload_prefix(info.id)) == {}


def test_prefix_is_put_before_every_key(make_s3_store: MakeStore) -> None:
    store = make_s3_store(s3_prefix="tenant-a/")
    info = new_info(store, 5)
    store.write(info, [b"hello"])

    assert sorted(map(unattempted, object_sizes(store))) == [
        f"tenant-a/{info.id}/{0:020d}",
        f"tenant-a/{info.id}/info.json",
    ]


def test_works_without_a_configured_region(make_s3_store: MakeStore) -> None:
    store = make_s3_store(s3_region="")
    info = new_info(store, 3)
    info = commit(info, store.write(info, [b"abc"]))

    assert b"".join(store.read(info, 0, 3)) == b"abc"


# -- reads --------------------------------------------------------------------------------------


def test_range_fetches_only_the_covering_slices(
    three_parts: tuple[S3Store, UploadInfo, bytes, SpyClient],
) -> None:
    store, info, data, spy = three_parts

    assert b"".join(store.read(info, P - 10, P + 10)) == data[P - 10 : P + 10]
    assert spy.gets == [(f"{0:020d}", P - 10, 10), (f"{P:020d}", 0, 10)]

    spy.gets.clear()
    assert b"".join(store.read(info, 2 * P + 1, 2 * P + 2)) == data[2 * P + 1 : 2 * P + 2]
    assert spy.gets == [(f"{2 * P:020d}", 1, 1)]

    spy.gets.clear()
    assert b"".join(store.read(info, 5, 3 * P - 5)) == data[5:-5]
    assert spy.gets == [(f"{0:020d}", 5, P - 5), (f"{P:020d}", 0, P), (f"{2 * P:020d}", 0, P - 5)]
    assert all(response.closed for response in spy.responses)


def test_closing_a_read_early_closes_the_response(
    three_parts: tuple[S3Store, UploadInfo, bytes, SpyClient],
) -> None:
    store, info, data, spy = three_parts
    reader = store.read(info, 0, info.offset)

    first = next(reader)
    assert len(first) == 16 * 1024 and first == data[: len(first)]
    assert len(spy.responses) == 1
    assert not spy.responses[0].closed
    reader.close()

    assert spy.responses[0].closed
    assert spy.responses[0].connection is None  # released to the pool
    assert len(spy.gets) == 1  # the later parts were never requested


def test_reads_stream_in_read_chunk_size_blocks(make_s3_store: MakeStore) -> None:
    store = make_s3_store(read_chunk_size=16 * 1024)
    data = bytes(range(256)) * (2 * P // 256)
    info = new_info(store, len(data))
    info = commit(info, store.write(info, [data]))

    chunks = list(store.read(info, 0, info.offset))

    assert b"".join(chunks) == data
    assert len(chunks) >= 8
    assert max(map(len, chunks)) <= 16 * 1024


@pytest.mark.parametrize("replaced_by", [50, 150])
def test_read_refuses_a_part_that_does_not_match_the_index(
    s3_store: S3Store, replaced_by: int
) -> None:
    info = new_info(s3_store, 200)
    info = commit(info, s3_store.write(info, [b"x" * 100]))
    # the object changed behind the index (a manual edit)
    key = s3_store.part_key(info.id, 0, info.parts[0].attempt)
    s3_store.client.put_object(s3_store.bucket, key, io.BytesIO(b"y" * replaced_by), replaced_by)

    with pytest.raises(BackendUnavailable, match="does not match the upload index"):
        b"".join(s3_store.read(info, 0, 100))


def test_read_refuses_a_range_the_index_does_not_cover(s3_store: S3Store) -> None:
    info = new_info(s3_store, 200)
    info = commit(info, s3_store.write(info, [b"x" * 100]))
    holey = info.evolve(offset=200, parts=(info.parts[0], Part(150, 50)))

    with pytest.raises(BackendUnavailable, match="no stored bytes at 100"):
        b"".join(s3_store.read(holey, 0, 200))


def test_discard_removes_exactly_the_written_parts(s3_store: S3Store) -> None:
    info = new_info(s3_store, 10 * P)
    info = commit(info, s3_store.write(info, [b"k" * 100]))
    rejected = s3_store.write(info, [b"r" * (2 * P + 1)])
    assert len(part_objects(s3_store, info)) == 4

    s3_store.discard(info, rejected)

    assert part_objects(s3_store, info) == {f"{0:020d}": 100}


# -- outages and start-up ------------------------------------------------------------------------


def test_outage_turns_into_backend_unavailable(moto_endpoint: str) -> None:
    server, endpoint = start_moto_server()  # a private server, so stopping it hurts no one else
    bucket = unique_bucket("outage")
    store = S3Store(make_s3_settings(endpoint, bucket, s3_part_size=P))
    try:
        store.ensure_bucket()
        info = new_info(store, 10 * P)
        info = commit(info, store.write(info, [b"before" * 1000]))
        assert b"".join(store.read(info, 0, 6)) == b"before"
    finally:
        server.stop()

    with pytest.raises(BackendUnavailable, match="connection refused"):
        store.write(info, [b"during" * 1000])
    with pytest.raises(BackendUnavailable):
        b"".join(store.read(info, 0, 6))
    with pytest.raises(BackendUnavailable):
        store.check()
    with pytest.raises(BackendUnavailable):
        store.save_info(info)
    with pytest.raises(BackendUnavailable):
        store.delete(info)
    with pytest.raises(BackendUnavailable):
        list(store.scan())
    store.discard(info, WriteResult(10, (Part(info.offset, 10),)))  # best effort: no raise

    # moto keeps its buckets in the process, so the session server can clean up
    drop_bucket(S3Store(make_s3_settings(moto_endpoint, bucket)))


@pytest.mark.parametrize("scheme", ["", "http://"])
def test_ensure_bucket_on_a_closed_port_is_one_clear_line(scheme: str) -> None:
    port = free_port()
    store = S3Store(make_s3_settings(f"{scheme}127.0.0.1:{port}", "tusserver"))

    with pytest.raises(StorageConfigError) as caught:
        store.ensure_bucket()

    assert str(caught.value) == f"S3 endpoint 127.0.0.1:{port} unreachable: connection refused"
    assert isinstance(caught.value, BackendUnavailable) and caught.value.status == 503
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_ensure_bucket_against_a_web_server_that_is_not_s3() -> None:
    class NotS3(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(404)
            self.end_headers()

        def do_PUT(self) -> None:
            self.send_response(405)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>\nno\n</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"127.0.0.1:{server.server_address[1]}"
    try:
        store = S3Store(make_s3_settings(endpoint, "tusserver"))
        with pytest.raises(StorageConfigError) as caught:
            store.ensure_bucket()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert str(caught.value) == f"S3 endpoint {endpoint} unusable: not an S3 API (HTTP 405)"


def test_ensure_bucket_with_rejected_credentials_is_one_clear_line(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = S3Store(make_s3_settings(moto_endpoint, unique_bucket()))
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys

    with pytest.raises(StorageConfigError) as caught:
        store.ensure_bucket()

    message = str(caught.value)
    assert message in (
        f"S3 credentials rejected by {moto_endpoint} (AccessDenied)",
        f"S3 credentials rejected by {moto_endpoint} (InvalidAccessKeyId)",
    )


def test_bucket_is_created_at_start_up_if_missing(moto_endpoint: str) -> None:
    store = S3Store(make_s3_settings(moto_endpoint, unique_bucket("startup")))
    try:
        assert not store.client.bucket_exists(store.bucket)
        with pytest.raises(BackendUnavailable, match="does not exist"):
            store.check()

        store.ensure_bucket()
        store.ensure_bucket()  # a second worker starting: nothing to do

        assert store.client.bucket_exists(store.bucket)
        store.check()
    finally:
        drop_bucket(store)


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("minio:9000", False, ("minio:9000", False)),
        ("minio:9000", True, ("minio:9000", True)),
        ("http://minio:9000", True, ("minio:9000", False)),
        ("https://s3.example.com/", False, ("s3.example.com", True)),
        ("127.0.0.1:9000/", False, ("127.0.0.1:9000", False)),
    ],
)
def test_endpoint_forms(endpoint: str, secure: bool, expected: tuple[str, bool]) -> None:
    assert parse_endpoint(endpoint, secure) == expected


@pytest.mark.parametrize("endpoint", ["ftp://minio:21", "http://minio:9000/bucket", "a/b", " "])
def test_bad_endpoints_are_config_errors(endpoint: str) -> None:
    with pytest.raises(StorageConfigError):
        parse_endpoint(endpoint, False)


def test_part_size_must_fit_one_put() -> None:
    with pytest.raises(StorageConfigError, match="at most 5 GiB"):
        S3Store(make_s3_settings("127.0.0.1:9", "b", s3_part_size=6 * 1024**3))


# -- info.json and index rebuild ------------------------------------------------------------------


def full_info() -> UploadInfo:
    return UploadInfo(
        id=new_upload_id(),
        length=123_456,
        offset=1000,
        metadata={"filename": "Gr\u00fc\u00dfe \u2603.txt", "filetype": "text/plain"},
        created=1_700_000_000.25,
        updated=1_700_000_100.5,
        expires=1_700_086_400.0,
        completed=None,
        owner="alice",
        concat="final",
        members=("a" * 32, "b" * 32),
        parts=(Part(0, 1000),),
    )


def test_info_dict_round_trip() -> None:
    info = full_info()

    data = info_to_dict(info)

    assert "parts" not in data
    assert data["members"] == ["a" * 32, "b" * 32]
    assert data["metadata"] == {"filename": "Gr\u00fc\u00dfe \u2603.txt", "filetype": "text/plain"}
    assert info_from_dict(json.loads(json.dumps(data))) == info.evolve(parts=())
    deferred = UploadInfo(id=new_upload_id(), length=None)
    assert info_from_dict(json.loads(json.dumps(info_to_dict(deferred)))) == deferred


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"id": 5},
        {"id": "x", "length": "12"},
        {"id": "x", "metadata": ["a"]},
        {"id": "x", "length": -1},
    ],
)
def test_info_from_dict_rejects_foreign_documents(document: Any) -> None:
    with pytest.raises(ValueError):
        info_from_dict(document)


def test_info_json_round_trip_through_the_bucket(s3_store: S3Store) -> None:
    info = full_info()
    s3_store.create(info.evolve(offset=0))

    s3_store.save_info(info)

    assert s3_store.load_info(info.id) == info.evolve(parts=())
    stored = object_sizes(s3_store, s3_store.upload_prefix(info.id))
    assert list(stored) == [f"{info.id}/info.json"]


def test_scan_finds_uploads_and_all_their_parts(make_s3_store: MakeStore) -> None:
    store = make_s3_store(s3_prefix="up/")
    # A: two committed writes, a discarded-but-left orphan past the end, and a gap orphan.
    a = new_info(store, 10 * P)
    a = commit(a, store.write(a, [b"1" * (P + 100)]))
    a = commit(a, store.write(a, [b"2" * 50]))
    store.write(a.evolve(offset=5 * P), [b"3" * 10])  # orphan after a gap
    store.save_info(a.evolve(parts=()))
    # B: created, no bytes yet. C: parts but no info.json (skipped).
    b = new_info(store, 7)
    c = UploadInfo(id=new_upload_id(), length=5)
    store.write(c, [b"lost!"])
    # foreign objects in the bucket are ignored
    store.client.put_object(store.bucket, "up/readme.txt", io.BytesIO(b"hi"), 2)
    store.client.put_object(store.bucket, "elsewhere/x", io.BytesIO(b"hi"), 2)
    store.client.put_object(store.bucket, f"up/{a.id}/notes", io.BytesIO(b"hi"), 2)

    found = {info.id: (info, parts) for info, parts in store.scan()}

    assert set(found) == {a.id, b.id}
    info_a, parts_a = found[a.id]
    assert info_a == a.evolve(parts=())
    assert plain(parts_a) == (Part(0, P), Part(P, 100), Part(P + 100, 50), Part(5 * P, 10))
    assert plain(contiguous_parts(parts_a)) == (Part(0, P), Part(P, 100), Part(P + 100, 50))
    assert sum(p.size for p in contiguous_parts(parts_a)) == a.offset
    assert found[b.id] == (b, ())


def test_two_attempts_at_one_offset_never_share_an_object(s3_store: S3Store) -> None:
    """Issue 10, defect 1: a stale writer's clean-up never deletes another attempt's parts."""
    data = bytes(range(256)) * (2 * P // 256) + b"tail"
    info = new_info(s3_store, len(data))
    stale = s3_store.write(info, chunked(data, 10_000), "aaaa")
    current = s3_store.write(info, chunked(data, 10_000), "bbbb")
    info = commit(info, current)

    s3_store.discard(info.evolve(offset=0), stale)

    assert b"".join(s3_store.read(info, 0, info.offset)) == data


def test_an_outage_after_acknowledged_parts_returns_them(make_s3_store: MakeStore) -> None:
    """Issue 10, defect 7: parts S3 acknowledged before a failure are reported, not leaked."""
    store = make_s3_store()
    info = new_info(store, 3 * P)
    real_put = store.client.put_object
    calls = []

    def put_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        if len(calls) > 1:
            raise ConnectionRefusedError("S3 went away")
        return real_put(*args, **kwargs)

    store.client.put_object = put_then_fail  # type: ignore[method-assign]
    result = store.write(info, chunked(b"q" * (3 * P), 10_000))

    assert isinstance(result.failure, BackendUnavailable)
    assert (result.bytes_written, plain(result.parts)) == (P, (Part(0, P),))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([], ()),
        ([Part(0, 10)], (Part(0, 10),)),
        ([Part(20, 5), Part(0, 10), Part(10, 10)], (Part(0, 10), Part(10, 10), Part(20, 5))),
        ([Part(0, 10), Part(11, 5)], (Part(0, 10),)),  # gap
        ([Part(0, 10), Part(5, 10), Part(10, 10)], (Part(0, 10),)),  # overlap stops the run
        (
            [Part(0, 10), Part(10, 4), Part(10, 6), Part(14, 1)],
            (Part(0, 10), Part(10, 4), Part(14, 1)),
        ),
        (
            [Part(0, 10), Part(10, 6), Part(10, 4), Part(16, 1)],
            (Part(0, 10), Part(10, 6), Part(16, 1)),
        ),
        ([Part(5, 10)], ()),  # does not start at 0
        ([Part(0, 0), Part(0, 3)], (Part(0, 3),)),  # empty objects carry nothing
    ],
    ids=[
        "empty",
        "one",
        "unsorted",
        "gap",
        "overlap",
        "dup-keep-first",
        "dup-keep-first-2",
        "no-zero",
        "empty-part",
    ],
)
def test_contiguous_parts(parts: list[Part], expected: tuple[Part, ...]) -> None:
    assert contiguous_parts(parts) == expected
