"""Upload state in a real Redis: atomic commits, listings, expiry index, tombstones."""

from __future__ import annotations

import pytest
import redis

from tusserver.errors import OffsetMismatch, UploadNotFound
from tusserver.models import Part, UploadInfo, new_upload_id
from tusserver.state.redis import RedisState


@pytest.fixture
def state(redis_client: redis.Redis, redis_prefix: str) -> RedisState:
    return RedisState(redis_client, redis_prefix)


def make(length: int | None = 100, created: float = 1000.0, **fields: object) -> UploadInfo:
    return UploadInfo(
        id=new_upload_id(),
        length=length,
        created=created,
        updated=created,
        expires=created + 60,
        **fields,  # type: ignore[arg-type]
    )


def test_round_trip_keeps_every_field(state: RedisState) -> None:
    info = make(metadata={"filename": "ä.txt", "empty": ""}, owner="ann", concat="partial")
    state.create(info)
    assert state.get(info.id) == info


def test_binary_metadata_and_digests_round_trip(state: RedisState) -> None:
    info = make(
        metadata={"blob": "\ufffd\ufffd"},
        metadata_binary={"blob": "//4="},
        digests={"sha-256": "", "sha-512": "AAAA"},
    )
    state.create(info)
    assert state.get(info.id) == info
    state.set_digests(info, {"sha-256": "BBBB"})
    state.set_metadata_binary(info, {})
    again = state.get(info.id)
    assert again is not None
    assert (again.digests, again.metadata_binary) == ({"sha-256": "BBBB"}, {})


def test_a_final_upload_is_completed_once(state: RedisState) -> None:
    final = make(length=None, concat="final", members=("a" * 32,))
    state.create(final)
    first = state.complete_final(final, 70, completed=2000.0)
    assert first is not None and first.is_complete
    assert state.complete_final(final, 70, completed=3000.0) is None, "only the first caller"
    stored = state.get(final.id)
    assert stored is not None
    assert (stored.length, stored.offset, stored.completed) == (70, 70, 2000.0)
    state.delete(stored, gone_ttl=0)
    assert state.complete_final(final, 70, completed=4000.0) is None


def test_commit_advances_offset_and_parts_together(state: RedisState) -> None:
    info = make()
    state.create(info)
    committed = state.commit_write(
        info, 40, [Part(0, 40)], updated=1001, expires=1061, completed=None
    )
    assert committed.offset == 40
    again = state.get(info.id, with_parts=True)
    assert again is not None and again.offset == 40 and again.parts == (Part(0, 40),)


def test_commit_from_a_stale_offset_changes_nothing(state: RedisState) -> None:
    info = make()
    state.create(info)
    state.commit_write(info, 40, [Part(0, 40)], updated=1001, expires=1061, completed=None)
    with pytest.raises(OffsetMismatch) as raised:
        state.commit_write(info, 30, [Part(0, 30)], updated=1002, expires=1062, completed=None)
    assert raised.value.headers["Upload-Offset"] == "40"
    after = state.get(info.id, with_parts=True)
    assert after is not None and after.offset == 40 and after.parts == (Part(0, 40),)


def test_commit_to_a_vanished_upload_is_not_found(state: RedisState) -> None:
    with pytest.raises(UploadNotFound):
        state.commit_write(make(), 1, [], updated=1, expires=None, completed=None)


def test_listing_is_newest_first_and_skips_partials(state: RedisState) -> None:
    old, new = make(created=1000.0), make(created=2000.0)
    partial = make(created=3000.0, concat="partial")
    for info in (old, new, partial):
        state.create(info)
    page = state.list(limit=10)
    assert [u.id for u in page.uploads] == [new.id, old.id]
    assert page.total == 2
    assert [u.id for u in state.list(limit=1, offset=1).uploads] == [old.id]


def test_expiry_index_and_tombstone(state: RedisState) -> None:
    info = make(created=1000.0)
    state.create(info)
    assert state.expired(now=1059) == []
    assert state.expired(now=1061) == [info.id]
    state.delete(info, gone_ttl=60)
    assert state.get(info.id) is None
    assert state.is_gone(info.id)
    assert state.expired(now=9999) == []
    assert state.list(limit=10).total == 0


def test_completion_leaves_the_expiry_index(state: RedisState) -> None:
    info = make(length=10)
    state.create(info)
    state.commit_write(info, 10, [], updated=1001, expires=None, completed=1001)
    assert state.expired(now=10**9) == []
    done = state.get(info.id)
    assert done is not None and done.is_complete and done.completed == 1001
