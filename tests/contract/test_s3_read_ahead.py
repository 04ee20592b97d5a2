"""S3 reads send the next part's GET while the current part streams, and never leak it."""

from __future__ import annotations

import time

import pytest

from tests.contract.conftest import S3_PART_SIZE as P
from tests.support.s3 import SpyClient
from tests.support.store import chunked, commit, new_info
from tusserver.errors import BackendUnavailable
from tusserver.models import Part, UploadInfo
from tusserver.storage.s3 import S3Store

ThreeParts = tuple[S3Store, UploadInfo, bytes, SpyClient]


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_next_part_is_requested_while_the_current_one_streams(three_parts: ThreeParts) -> None:
    store, info, data, spy = three_parts
    reader = store.read(info, 0, info.offset)

    assert next(reader) + next(reader) == data[: 32 * 1024]  # two blocks of the first part
    assert wait_for(lambda: len(spy.gets) == 2)
    assert spy.gets[1] == (f"{P:020d}", 0, P)

    assert b"".join(reader) == data[32 * 1024 :]
    assert [get[0] for get in spy.gets] == [f"{i * P:020d}" for i in range(3)]
    assert all(response.closed for response in spy.responses)


def test_closing_mid_part_closes_the_read_ahead_response_too(three_parts: ThreeParts) -> None:
    store, info, _, spy = three_parts
    reader = store.read(info, 0, info.offset)
    next(reader)
    next(reader)  # the second part's GET goes out now

    reader.close()

    assert wait_for(lambda: len(spy.responses) == 2 and all(r.closed for r in spy.responses))
    assert len(spy.gets) == 2  # the third part was never requested


def test_a_hole_after_a_part_is_reported_after_that_part(make_s3_store: object) -> None:
    store: S3Store = make_s3_store(read_chunk_size=16 * 1024)  # type: ignore[operator]
    data = b"x" * P
    info = new_info(store, 3 * P)
    info = commit(info, store.write(info, chunked(data, 50_000)))
    holey = info.evolve(offset=3 * P, parts=(info.parts[0], Part(2 * P, P)))
    received = bytearray()

    with pytest.raises(BackendUnavailable, match=f"no stored bytes at {P}"):
        for block in store.read(holey, 0, 3 * P):
            received += block

    assert bytes(received) == data  # the covered part came out in full first
