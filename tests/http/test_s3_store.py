"""What only the S3 store does, seen through the HTTP API: part objects, ranges, outages, orphans.

Every test here runs with the S3 store only (part size 64 KiB, see tests/http/conftest.py) and
looks at the bucket and the Redis part index as well as at what a client gets back.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from moto.server import ThreadedMotoServer

from tests.support.app_fixtures import S3_PART_SIZE as P
from tests.support.s3 import object_sizes, start_moto_server
from tests.support.tus import TUS, create, digest_header, head, patch, send_raw, upload_id
from tusserver.state.keys import Keys

pytestmark = pytest.mark.parametrize("store_kind", ["s3"], indirect=True)

SOURCE = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(5 * P // 32))
OCTET = {"Content-Type": "application/offset+octet-stream"}


# -- helpers ---------------------------------------------------------------------------------


def store_of(app: Flask) -> Any:
    return app.extensions["tusserver"].store


def part_objects(app: Flask, path: str) -> dict[str, int]:
    """The upload's objects in the bucket, {name after `<id>/`: size}, info.json left out."""
    store = store_of(app)
    prefix = store.upload_prefix(upload_id(path))
    return {
        key[len(prefix) :]: size
        for key, size in object_sizes(store, prefix).items()
        if not key.endswith("/info.json")
    }


def part_layout(app: Flask, path: str) -> dict[str, int]:
    """`part_objects` keyed by start offset alone (each key's write-attempt suffix dropped)."""
    layout: dict[str, int] = {}
    for key, size in part_objects(app, path).items():
        start = key.partition(".")[0]
        assert start not in layout, f"two objects start at {start}"
        layout[start] = size
    return layout


def all_objects(app: Flask, path: str) -> dict[str, int]:
    store = store_of(app)
    return object_sizes(store, store.upload_prefix(upload_id(path)))


def part_index(client: redis.Redis, prefix: str, path: str) -> list[tuple[int, int]]:
    """The committed parts Redis holds for the upload, as sorted (start, size)."""
    members = client.zrange(Keys(prefix).parts(upload_id(path)), 0, -1)
    return sorted(
        (int(start), int(size)) for start, size, *_attempt in (m.split(":") for m in members)
    )


def name(start: int) -> str:
    return f"{start:020d}"


def cut(start: int, size: int) -> list[tuple[int, int]]:
    """The (start, size) of the parts one PATCH of `size` bytes at `start` makes."""
    return [(s, min(P, start + size - s)) for s in range(start, start + size, P)]


def offset_of(client: Any, path: str) -> int:
    response = head(client, path)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


def put_object(app: Flask, key: str, data: bytes) -> None:
    """Write an object straight into the bucket, behind the server's back."""
    store = store_of(app)
    store.client.put_object(store.bucket, key, io.BytesIO(data), len(data))


# -- part layout -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [1, P - 1, P, P + 1, 3 * P + P // 2],
    ids=["1B", "part-1", "part", "part+1", "3.5parts"],
)
def test_one_patch_makes_exactly_these_parts(
    make_app: Callable[..., Flask], redis_client: redis.Redis, redis_prefix: str, size: int
) -> None:
    app = make_app()
    client = app.test_client()
    path = create(client, size)

    response = patch(client, path, 0, SOURCE[:size])

    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["Upload-Offset"] == str(size)
    expected = cut(0, size)
    assert part_layout(app, path) == {name(start): length for start, length in expected}
    assert part_index(redis_client, redis_prefix, path) == expected
    assert client.get(path).data == SOURCE[:size]


def test_parts_are_named_by_their_absolute_offset_across_patches(
    make_app: Callable[..., Flask], redis_client: redis.Redis, redis_prefix: str
) -> None:
    app = make_app()
    client = app.test_client()
    sizes = [1, P - 1, P + 1, 7, 2 * P]
    total = sum(sizes)
    path = create(client, total)

    expected: list[tuple[int, int]] = []
    offset = 0
    for size in sizes:
        response = patch(client, path, offset, SOURCE[offset : offset + size])
        assert response.status_code == 204, response.get_data(as_text=True)
        expected += cut(offset, size)
        offset += size

    # 1 | P-1 | P, 1 | 7 | P, P: a PATCH never merges into the previous one's last part
    assert expected == [(0, 1), (1, P - 1), (P, P), (2 * P, 1), (2 * P + 1, 7),
                        (2 * P + 8, P), (3 * P + 8, P)]  # fmt: skip
    assert part_layout(app, path) == {name(start): length for start, length in expected}
    assert part_index(redis_client, redis_prefix, path) == expected
    assert client.get(path).data == SOURCE[:total]


# -- ranged downloads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        (f"bytes={P - 10}-{P + 9}", P - 10, P + 10),  # across the first boundary
        (f"bytes={P}-{P}", P, P + 1),  # the first byte of a part
        (f"bytes={P - 1}-{P - 1}", P - 1, P),  # the last byte of a part
        (f"bytes=100-{3 * P + 99}", 100, 3 * P + 100),  # four parts, ends mid-part
        (f"bytes={2 * P + 5}-", 2 * P + 5, 3 * P + P // 2),  # open end into the short last part
        (f"bytes=-{P + 3}", 2 * P + P // 2 - 3, 3 * P + P // 2),  # suffix across a boundary
    ],
)
def test_range_across_part_boundaries(
    make_app: Callable[..., Flask], header: str, start: int, end: int
) -> None:
    app = make_app()
    client = app.test_client()
    size = 3 * P + P // 2
    path = create(client, size)
    assert patch(client, path, 0, SOURCE[:size]).status_code == 204
    assert len(part_objects(app, path)) == 4

    response = client.get(path, headers={"Range": header})

    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
    assert response.headers["Content-Length"] == str(end - start)
    assert response.data == SOURCE[start:end]


# -- S3 outage in the middle of a PATCH ------------------------------------------------------


class RestartableMoto:
    """A private moto server that can be stopped and started again on the same port.

    moto keeps its S3 state in the process (not in the server), so a restarted server still has
    every bucket and object: it behaves like an S3 endpoint that was unreachable for a while.
    """

    def __init__(self) -> None:
        self.server: ThreadedMotoServer | None
        self.server, self.endpoint = start_moto_server()
        self.port = int(self.endpoint.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        assert self.server is None
        self.server, _ = start_moto_server(self.port)


@pytest.fixture
def private_moto() -> Iterator[RestartableMoto]:
    """Requested before `make_app` so it is torn down after the app's bucket was dropped."""
    moto = RestartableMoto()
    try:
        yield moto
    finally:
        if moto.server is None:  # a failed test left it down: the teardown still needs S3
            moto.start()
        moto.stop()


class CutsS3Midway(io.RawIOBase):
    """A request body, 16 KiB per read, that takes S3 down once the first part has been put.

    The store puts a part as soon as its buffer holds the part size, before it asks for more
    body, so the first read past `P` happens after part 0 was acknowledged.
    """

    def __init__(self, data: bytes, on_first_part: Callable[[], None], step: int = 16 * 1024):
        self.data = data
        self.position = 0
        self.step = step
        self.on_first_part: Callable[[], None] | None = on_first_part

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.position >= P and self.on_first_part is not None:
            self.on_first_part()
            self.on_first_part = None
        limit = self.step if size is None or size < 0 else min(size, self.step)
        chunk = self.data[self.position : self.position + limit]
        self.position += len(chunk)
        return chunk


def test_s3_outage_mid_patch_is_503_and_the_upload_resumes_after(
    private_moto: RestartableMoto,
    make_app: Callable[..., Flask],
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    app = make_app(s3_endpoint=private_moto.endpoint)
    client = app.test_client()
    size = 3 * P + P // 2
    path = create(client, size)
    assert patch(client, path, 0, SOURCE[:P]).status_code == 204  # one committed part first

    body = CutsS3Midway(SOURCE[P:size], private_moto.stop)
    headers = {**TUS, **OCTET, "Upload-Offset": str(P)}
    response = send_raw(client, "PATCH", path, body, headers, content_length=size - P)

    assert private_moto.server is None, "the body never got past the first part"
    assert response.status_code == 503
    message = response.get_data(as_text=True)
    assert "backend-unavailable" in message and "connection refused" in message
    assert "Traceback" not in message
    # The part S3 acknowledged before the outage is committed, not leaked: the client resumes
    # after it.
    assert offset_of(client, path) == 2 * P
    assert part_index(redis_client, redis_prefix, path) == [(0, P), (P, P)]
    download = client.get(path)
    assert download.status_code == 409  # still incomplete: nothing served past the offset

    private_moto.start()  # S3 is back, same port, same buckets
    assert part_layout(app, path) == {name(0): P, name(P): P}

    offset = offset_of(client, path)
    response = patch(client, path, offset, SOURCE[offset:size])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["Upload-Offset"] == str(size)
    assert part_index(redis_client, redis_prefix, path) == [(0, P), *cut(P, size - P)]
    download = client.get(path)
    assert download.status_code == 200
    assert hashlib.sha256(download.data).digest() == hashlib.sha256(SOURCE[:size]).digest()


# -- orphans ---------------------------------------------------------------------------------


def test_orphan_parts_are_never_served_and_termination_removes_them(
    make_app: Callable[..., Flask], redis_client: redis.Redis, redis_prefix: str
) -> None:
    app = make_app()
    client = app.test_client()
    store = store_of(app)
    size = 3 * P + P // 2
    path = create(client, size)
    uid = upload_id(path)
    assert patch(client, path, 0, SOURCE[:P]).status_code == 204

    # A crashed server's PUTs that S3 acknowledged but that were never committed: one at the
    # next offset with a different size than the next PATCH will write there, and one past it
    # at an offset that no later part starts at.
    put_object(app, store.part_key(uid, P), b"\xee" * (2 * P))
    put_object(app, store.part_key(uid, P + 1000), b"\xdd" * 777)
    assert offset_of(client, path) == P

    assert patch(client, path, P, SOURCE[P : P + 500]).status_code == 204
    response = patch(client, path, P + 500, SOURCE[P + 500 : size])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["Upload-Offset"] == str(size)

    committed = [(0, P), (P, 500), *cut(P + 500, size - P - 500)]
    assert part_index(redis_client, redis_prefix, path) == committed
    objects = part_objects(app, path)
    assert objects[name(P + 1000)] == 777, "the orphan should still be in the bucket"
    assert objects[name(P)] == 2 * P, "a new attempt never overwrites another one's object"
    download = client.get(path)
    assert download.status_code == 200
    assert download.data == SOURCE[:size]
    ranged = client.get(path, headers={"Range": f"bytes={P + 900}-{P + 2000}"})
    assert ranged.status_code == 206 and ranged.data == SOURCE[P + 900 : P + 2001]

    response = client.delete(path, headers=TUS)

    assert response.status_code == 204
    assert all_objects(app, path) == {}, "termination left objects behind"
    assert part_index(redis_client, redis_prefix, path) == []
    assert head(client, path).status_code in (404, 410)


# -- checksums -------------------------------------------------------------------------------


def test_wrong_checksum_leaves_no_parts_behind(
    make_app: Callable[..., Flask], redis_client: redis.Redis, redis_prefix: str
) -> None:
    app = make_app()
    client = app.test_client()
    size = 3 * P + P // 2
    path = create(client, size)
    first = SOURCE[: 2 * P + 10]

    response = patch(client, path, 0, first, Upload_Checksum=digest_header("sha256", first + b"x"))

    assert response.status_code == 460
    assert offset_of(client, path) == 0
    assert part_index(redis_client, redis_prefix, path) == []
    assert part_objects(app, path) == {}
    assert set(all_objects(app, path)) == {f"{upload_id(path)}/info.json"}

    # After a committed PATCH, a bad one past it leaves exactly the committed parts.
    response = patch(client, path, 0, SOURCE[:P], Upload_Checksum=digest_header("sha1", SOURCE[:P]))
    assert response.status_code == 204
    rest = SOURCE[P:size]
    response = patch(client, path, P, rest, Upload_Checksum=digest_header("md5", rest[::-1]))
    assert response.status_code == 460
    assert offset_of(client, path) == P
    assert part_index(redis_client, redis_prefix, path) == [(0, P)]
    assert part_layout(app, path) == {name(0): P}


# -- expiry ----------------------------------------------------------------------------------


def test_reaper_deletes_every_object_of_an_expired_upload(
    make_app: Callable[..., Flask], redis_client: redis.Redis, redis_prefix: str
) -> None:
    now = [1_800_000_000.0]
    app = make_app(clock=lambda: now[0], expire_after=3600)
    client = app.test_client()
    service = app.extensions["tusserver"].service
    size = 3 * P + P // 2

    stale = create(client, size)
    assert patch(client, stale, 0, SOURCE[: P + P // 2]).status_code == 204
    put_object(app, store_of(app).part_key(upload_id(stale), 2 * P), b"orphan")
    done = create(client, 10)
    assert patch(client, done, 0, SOURCE[:10]).status_code == 204
    now[0] += 1800
    fresh = create(client, size)
    assert patch(client, fresh, 0, SOURCE[:P]).status_code == 204
    assert len(all_objects(app, stale)) == 4  # info.json, two parts, the orphan

    now[0] += 1801  # `stale` is past its expiry, `fresh` is not, `done` never expires
    removed = service.cleanup()

    assert removed == [upload_id(stale)]
    assert all_objects(app, stale) == {}
    assert part_index(redis_client, redis_prefix, stale) == []
    assert head(client, stale).status_code == 410
    assert part_layout(app, fresh) == {name(0): P}
    assert client.get(done).data == SOURCE[:10]
