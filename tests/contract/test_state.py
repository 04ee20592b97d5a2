"""Upload state in a real Redis: atomic commits, listings, expiry index, tombstones."""

from __future__ import annotations

import pytest
import redis

from tusserver.errors import Forbidden, InvalidConcat, LockLost, OffsetMismatch, UploadNotFound
from tusserver.models import Part, UploadInfo, new_upload_id
from tusserver.state.catalog import CatalogQuery
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


TOKEN = "host/1|1|1|token"


def locked(state: RedisState, info: UploadInfo, token: str = TOKEN) -> UploadInfo:
    """Record `info` and take its lock with `token`, as a writer does before committing."""
    state.create(info)
    assert state.try_lock(info.id, token, 60_000).acquired
    return info


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
    info = locked(state, make())
    committed = state.commit_write(
        info, 40, [Part(0, 40)], TOKEN, updated=1001, expires=1061, completed=None
    )
    assert committed.offset == 40
    again = state.get(info.id, with_parts=True)
    assert again is not None and again.offset == 40 and again.parts == (Part(0, 40),)


def test_commit_from_a_stale_offset_changes_nothing(state: RedisState) -> None:
    info = locked(state, make())
    state.commit_write(info, 40, [Part(0, 40)], TOKEN, updated=1001, expires=1061, completed=None)
    with pytest.raises(OffsetMismatch) as raised:
        state.commit_write(
            info, 30, [Part(0, 30)], TOKEN, updated=1002, expires=1062, completed=None
        )
    assert raised.value.headers["Upload-Offset"] == "40"
    after = state.get(info.id, with_parts=True)
    assert after is not None and after.offset == 40 and after.parts == (Part(0, 40),)


def test_commit_to_a_vanished_upload_is_not_found(state: RedisState) -> None:
    info = locked(state, make())
    state.client.delete(state.keys.upload(info.id))
    with pytest.raises(UploadNotFound):
        state.commit_write(info, 1, [], TOKEN, updated=1, expires=None, completed=None)


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
    info = locked(state, make(length=10))
    state.commit_write(info, 10, [], TOKEN, updated=1001, expires=None, completed=1001)
    assert state.expired(now=10**9) == []
    done = state.get(info.id)
    assert done is not None and done.is_complete and done.completed == 1001


def test_commit_without_the_lock_is_refused(state: RedisState) -> None:
    """Issue 10, defect 1: the lock token is a fencing token the commit checks."""
    info = locked(state, make())
    state.client.set(state.keys.lock(info.id), "host/2|2|2|newcomer")  # lost to a newcomer
    with pytest.raises(LockLost):
        state.commit_write(
            info, 40, [Part(0, 40, "a1")], TOKEN, updated=2, expires=3, completed=None
        )
    after = state.get(info.id, with_parts=True)
    assert after is not None and after.offset == 0 and after.parts == ()


def test_commit_can_release_the_lock_in_the_same_step(state: RedisState) -> None:
    info = locked(state, make())
    state.commit_write(info, 5, [], TOKEN, updated=2, expires=3, completed=None, release=True)
    assert not state.client.exists(state.keys.lock(info.id))


def test_parts_keep_their_attempt(state: RedisState) -> None:
    info = locked(state, make())
    state.commit_write(info, 40, [Part(0, 40, "ab12")], TOKEN, updated=2, expires=3, completed=None)
    again = state.get(info.id, with_parts=True)
    assert again is not None and again.parts == (Part(0, 40, "ab12"),)


def complete_partial(state: RedisState, length: int = 10) -> UploadInfo:
    info = make(length=length, offset=length, concat="partial", completed=1000.0)
    state.create(info)
    return info


def test_a_final_references_its_partials_atomically(state: RedisState) -> None:
    """Issue 10, defect 2: a referenced partial cannot be deleted, so a final keeps it."""
    first, second = complete_partial(state), complete_partial(state)
    final = make(length=20, offset=20, concat="final", members=(first.id, second.id))
    state.create_final(final, now=1001.0)

    assert state.referencing_finals(first.id) == {final.id}
    with pytest.raises(Forbidden):
        state.delete(first, gone_ttl=60)
    assert state.get(first.id) is not None
    member = state.get(first.id)
    assert member is not None and member.expires is None  # a used partial never expires
    assert first.id not in state.expired(now=10**9)

    unused = state.delete(final, gone_ttl=60)
    assert sorted(unused) == sorted([first.id, second.id])
    state.delete(first, gone_ttl=60)  # no final uses it now


def test_a_final_of_a_removed_partial_is_refused(state: RedisState) -> None:
    first = complete_partial(state)
    state.delete(first, gone_ttl=60)
    final = make(length=10, offset=10, concat="final", members=(first.id,))
    with pytest.raises(InvalidConcat):
        state.create_final(final, now=1001.0)
    assert state.get(final.id) is None


def test_an_unfinished_partial_keeps_its_expiry_until_it_completes(state: RedisState) -> None:
    """Concatenation-unfinished: a final may reference a running partial; that partial still
    expires if abandoned, and stops expiring once it completes while a final uses it."""
    partial = locked(state, make(length=10, concat="partial"))
    final = make(length=None, concat="final", members=(partial.id,))
    state.create_final(final, now=1001.0)
    assert partial.id in state.expired(now=10**9)

    state.commit_write(partial, 10, [], TOKEN, updated=2, expires=3, completed=2, release=True)

    done = state.get(partial.id)
    assert done is not None and done.is_complete and done.expires is None
    assert partial.id not in state.expired(now=10**9)


def test_a_complete_or_empty_partial_enters_the_expiry_index(state: RedisState) -> None:
    """Issue 10, defect 4: partials that no final uses must expire, zero-length ones too."""
    empty = make(length=0, offset=0, concat="partial", completed=1000.0)
    state.create(empty)
    assert empty.id in state.expired(now=10**9)


# -- indexes that span uploads: separate writes, healed by their readers ------------------------


def test_a_refused_final_takes_back_the_references_it_made(state: RedisState) -> None:
    """One member does not qualify: the partials referenced before it are free again."""
    first = complete_partial(state)
    not_partial = make(length=10, offset=10, completed=1000.0)
    state.create(not_partial)
    final = make(length=20, offset=20, concat="final", members=(first.id, not_partial.id))

    with pytest.raises(InvalidConcat, match="not a partial upload"):
        state.create_final(final, now=1001.0)

    assert state.get(final.id) is None
    assert state.referencing_finals(first.id) == set()
    state.delete(first, gone_ttl=60)  # not referenced: deleting it is allowed


def test_the_expiry_index_spans_every_shard(state: RedisState) -> None:
    """Expiry entries spread over the shards (nodes, on a cluster); the reaper reads them all."""
    uploads = [make(created=1000.0 + n) for n in range(48)]
    for info in uploads:
        state.create(info)
    shards = {state.keys.expiry(info.id) for info in uploads}
    assert len(shards) > 8

    due = state.expired(now=10**9, limit=100)

    assert due == [info.id for info in uploads], "all of them, longest expired first"
    assert state.expired(now=10**9, limit=5) == [info.id for info in uploads[:5]]


def test_a_stale_expiry_entry_is_corrected_not_returned(state: RedisState) -> None:
    """An index entry older than the upload's expiry (a lost index update) does not reap it."""
    info = make(created=1000.0)
    state.create(info)
    state.client.zadd(state.keys.expiry(info.id), {info.id: 10.0})  # stale: says long expired

    assert state.expired(now=1030) == []
    assert state.client.zscore(state.keys.expiry(info.id), info.id) == info.expires
    assert state.expired(now=1061) == [info.id]


def test_an_expiry_entry_without_state_is_dropped(state: RedisState) -> None:
    ghost = make()
    state.client.zadd(state.keys.expiry(ghost.id), {ghost.id: 10.0})
    assert state.expired(now=1000) == []
    assert state.client.zscore(state.keys.expiry(ghost.id), ghost.id) is None


def test_the_unsharded_expiry_index_of_earlier_versions_is_drained(state: RedisState) -> None:
    """After an upgrade, uploads indexed by the old single key still expire."""
    old = make(created=1000.0)
    state.create(old)
    state.client.zrem(state.keys.expiry(old.id), old.id)
    state.client.zadd(state.keys.legacy_expiry, {old.id: old.expires})

    assert state.expired(now=1061) == [old.id]
    assert state.client.zcard(state.keys.legacy_expiry) == 0
    assert state.client.zscore(state.keys.expiry(old.id), old.id) == old.expires


def test_reindex_mends_an_upload_missing_from_the_indexes(state: RedisState) -> None:
    """A crash between the state write and the index writes: rebuild-index puts it back."""
    info = make(created=1000.0, owner="ann")
    state.create(info)
    state.catalog.remove(info.id, "ann")
    state.client.zrem(state.keys.expiry(info.id), info.id)
    assert state.list(limit=10).total == 0

    assert state.reindex(info.id)
    assert not state.reindex(make().id), "no state: nothing to index"

    assert [u.id for u in state.list(limit=10).uploads] == [info.id]
    assert [u.id for u in state.list(limit=10, owner="ann").uploads] == [info.id]
    assert state.expired(now=1061) == [info.id]


def test_an_upgrade_from_before_the_catalog_lists_every_upload_once(state: RedisState) -> None:
    """Uploads stored by a version with only the old `uploads` listing are indexed on the first
    start (`tusserver serve` calls upgrade_indexes), and only the first."""
    old = [make(created=1000.0 + n, owner="ann") for n in range(3)]
    for info in old:
        state.create(info)
        state.catalog.remove(info.id, "ann")
    state.client.zadd(state.keys.legacy_uploads, {info.id: info.created for info in old})
    assert state.list(limit=10).total == 0

    assert state.upgrade_indexes() == 3

    assert [u.id for u in state.list(limit=10, owner="ann").uploads] == [u.id for u in old[::-1]]
    assert not state.client.exists(state.keys.legacy_uploads)
    assert state.upgrade_indexes() is None, "already upgraded: nothing to do"


def test_an_older_catalog_layout_is_rebuilt_once_on_the_next_start(state: RedisState) -> None:
    """A deployment indexed before the 1-/2-gram sets, the sizes split by completion and the
    size buckets' bitmaps gets them on the first start of this version (its layout mark is
    older), and only then."""
    done = make(created=1000.0, owner="ann", metadata={"filename": "Ab.txt"}).evolve(offset=100)
    open_ = make(created=1001.0, owner="ann", metadata={"filename": "bc.txt"})
    for info in (done, open_):
        state.create(info)
    all_ = state.keys.all_uploads
    new_keys = [f"{all_}:gram:{g}" for g in ("a", "b", "ab", "bc")]
    new_keys += [f"{scope}:size:{kind}" for scope in (all_, state.keys.owner("ann"))
                 for kind in ("done", "open")]  # fmt: skip
    new_keys += [f"{all_}:{name}" for name in ("slot", "slot:free", "slot:next")]
    new_keys += state.client.keys(f"{all_}:bits:*")
    state.client.delete(*new_keys, state.keys.catalog_layout)  # what an older version left
    by_size = CatalogQuery(complete=True, min_size=0)
    assert state.list(10, query=by_size).total == 0

    state.catalog.twin_min = 1  # every set gets its bitmap twin, as large ones do
    assert state.upgrade_indexes() == 2

    assert [u.id for u in state.list(10, query=by_size).uploads] == [done.id]
    assert [u.id for u in state.list(10, owner="ann", query=by_size).uploads] == [done.id]
    assert [u.id for u in state.list(10, query=CatalogQuery(q="b")).uploads] == [open_.id, done.id]
    state.catalog.sparse = 0  # count from the bitmaps, as over many uploads
    assert state.list(10, query=CatalogQuery(q="b", complete=True)).total == 1
    assert state.list(10, query=CatalogQuery(q="b", min_size=64)).total == 2  # buckets
    assert state.upgrade_indexes() is None, "already upgraded: nothing to do"


def test_many_locks_refresh_in_one_call_wherever_they_live(state: RedisState) -> None:
    """The keeper's bulk refresh: held locks are extended, lost ones reported, on every node."""
    uploads = [make() for _ in range(24)]
    for info in uploads:
        locked(state, info)
    lost = uploads[::3]
    for info in lost:
        assert state.unlock(info.id, TOKEN)
    state.request_release(uploads[1].id, "host/9|9|9|newcomer", 60_000)

    answers = state.refresh_locks([(info.id, TOKEN) for info in uploads], 90_000)

    expected = [(info not in lost, info is uploads[1]) for info in uploads]
    assert answers == expected
    assert 60_000 < state.client.pttl(state.keys.lock(uploads[2].id)) <= 90_000


def test_a_write_moves_the_expiry_later_without_touching_the_index(state: RedisState) -> None:
    """Sliding expiry: the reaper finds the entry at its old time and waits for the new one."""
    info = locked(state, make(created=1000.0))  # expires at 1060
    state.commit_write(info, 10, [], TOKEN, updated=1500, expires=2000, completed=None)

    assert state.expired(now=1500) == []
    assert state.expired(now=1999) == []
    assert state.expired(now=2001) == [info.id]
