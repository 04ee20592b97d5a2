"""The per-upload lock against a real Redis: one holder, release requests, dead holders."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import pytest
import redis

from tusserver.errors import UploadGone, UploadLocked, UploadNotFound
from tusserver.locks.holder import holder_is_dead, new_token
from tusserver.locks.redis import LockManager
from tusserver.models import UploadInfo, new_upload_id
from tusserver.state.redis import RedisState


@pytest.fixture
def state(redis_client: redis.Redis, redis_prefix: str) -> RedisState:
    return RedisState(redis_client, redis_prefix)


@pytest.fixture
def locks(state: RedisState) -> LockManager:
    return LockManager(state, ttl=5, wait=0.3, poll=0.01)


@pytest.fixture
def upload(state: RedisState) -> str:
    info = UploadInfo(id=new_upload_id(), length=10, created=1.0, updated=1.0)
    state.create(info)
    return info.id


def release_requested(lock: object) -> bool:
    return lock.refresh()[1]  # type: ignore[attr-defined]


def test_second_request_is_refused_and_withdraws_its_release_request(
    locks: LockManager, upload: str
) -> None:
    holder = locks.acquire(upload)
    with pytest.raises(UploadLocked):
        locks.acquire(upload, wait=0.1)
    assert not release_requested(holder), "a request that gave up left its release request"
    holder.release()
    fresh = locks.acquire(upload, wait=0)
    assert not release_requested(fresh), "the next writer would be interrupted for nothing"
    fresh.release()


def test_waiting_request_asks_the_holder_and_gets_in_when_it_lets_go(
    locks: LockManager, upload: str
) -> None:
    holder = locks.acquire(upload)

    def holder_reacts() -> None:
        while not release_requested(holder):
            time.sleep(0.01)
        holder.release()

    thread = threading.Thread(target=holder_reacts)
    thread.start()
    newcomer = locks.acquire(upload, wait=2)
    thread.join()
    assert not release_requested(newcomer)
    newcomer.release()


def test_reaper_style_acquire_never_asks_a_writer_to_leave(locks: LockManager, upload: str) -> None:
    holder = locks.acquire(upload)
    with pytest.raises(UploadLocked):
        locks.acquire(upload, wait=0, ask_release=False)
    assert not release_requested(holder)
    holder.release()


def test_only_the_holder_can_refresh_or_release(
    locks: LockManager, state: RedisState, redis_client: redis.Redis, upload: str
) -> None:
    holder = locks.acquire(upload)
    redis_client.delete(state.keys.lock(upload))  # the lock expired...
    other = locks.acquire(upload, wait=0)  # ...and someone else took it
    assert holder.refresh() == (False, False)
    assert holder.lost
    holder.release()  # must not free the other's lock
    with pytest.raises(UploadLocked):
        locks.acquire(upload, wait=0, ask_release=False)
    assert other.refresh()[0] is True
    other.release()
    locks.acquire(upload, wait=0).release()


def test_taking_the_lock_reads_the_state_with_it(locks: LockManager, upload: str) -> None:
    lock = locks.acquire(upload, read=True)
    assert lock.info is not None and lock.info.id == upload and lock.info.length == 10
    lock.release()


def test_no_lock_is_taken_for_an_unknown_or_removed_upload(
    locks: LockManager, state: RedisState, redis_client: redis.Redis, upload: str
) -> None:
    with pytest.raises(UploadNotFound):
        locks.acquire(new_upload_id())
    info = state.get(upload)
    assert info is not None
    state.delete(info, gone_ttl=60)
    with pytest.raises(UploadGone):
        locks.acquire(upload)
    assert not redis_client.exists(state.keys.lock(upload))


def test_a_dead_holders_lock_is_broken_at_once(
    locks: LockManager, state: RedisState, upload: str
) -> None:
    """Issue 10: a worker killed with -9 must not block a resume for the lock's TTL."""
    child = subprocess.run(
        [sys.executable, "-c", "from tusserver.locks.holder import new_token; print(new_token())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_token = child.stdout.strip()  # that process has exited: its pid no longer runs
    assert state.try_lock(upload, dead_token, 60_000).acquired

    lock = locks.acquire(upload, wait=0)  # no waiting at all, and still in

    lock.release()


def test_a_live_holder_on_this_host_is_never_judged_dead() -> None:
    assert not holder_is_dead(new_token())
    assert not holder_is_dead("otherhost/1|1|1|abcd")  # other hosts: only their TTL ends them
    assert not holder_is_dead("not a token")


class _Body:
    """A running write's body as the keeper sees it: never idle, records interruptions."""

    idle_seconds = 0.0

    def __init__(self) -> None:
        self.interrupted: str | None = None

    def interrupt(self, reason: str) -> None:
        self.interrupted = reason


def test_the_keeper_refreshes_every_running_write_in_one_round_trip_per_tick(
    locks: LockManager, state: RedisState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of slow uploads per worker cost one Redis round trip per tick, not thousands."""
    from tusserver.locks.keeper import LockKeeper

    bulk_sizes: list[int] = []
    single: list[str] = []
    refresh_locks, refresh_lock = state.refresh_locks, state.refresh_lock

    def counting_bulk(pairs: list[tuple[str, str]], ttl_ms: int) -> list[tuple[bool, bool]]:
        bulk_sizes.append(len(pairs))
        return refresh_locks(pairs, ttl_ms)

    def counting_single(upload_id: str, token: str, ttl_ms: int) -> tuple[bool, bool]:
        single.append(upload_id)
        return refresh_lock(upload_id, token, ttl_ms)

    monkeypatch.setattr(state, "refresh_locks", counting_bulk)
    monkeypatch.setattr(state, "refresh_lock", counting_single)
    uploads = []
    for _ in range(40):
        info = UploadInfo(id=new_upload_id(), length=10, created=1.0, updated=1.0)
        state.create(info)
        uploads.append(info.id)
    held = [locks.acquire(upload_id) for upload_id in uploads]
    bodies = [_Body() for _ in held]
    keeper = LockKeeper(read_timeout=60, interval=0.05)
    try:
        with contextlib.ExitStack() as stack:
            for lock, body in zip(held, bodies, strict=True):
                stack.enter_context(keeper.watch(lock, body))
            deadline = time.monotonic() + 5
            while len(bulk_sizes) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert bulk_sizes and max(bulk_sizes) == 40
            assert single == []
            # A newcomer asking for one upload interrupts that write and no other.
            state.request_release(uploads[7], "newcomer", 5000)
            while bodies[7].interrupted is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert bodies[7].interrupted == "another request asked for the upload"
            assert [b.interrupted for i, b in enumerate(bodies) if i != 7] == [None] * 39
            assert all(lock.refresh()[0] for lock in held)
    finally:
        keeper.stop()
        for lock in held:
            lock.release()


def test_the_keepers_bulk_refresh_extends_a_lock_only_once_it_runs_low(
    locks: LockManager, state: RedisState, redis_client: redis.Redis, upload: str
) -> None:
    """Five checks a second per slow upload must not each be a write Valkey fsyncs to its AOF:
    the bulk refresh leaves a lock with most of its life alone and extends one running low."""
    lock = locks.acquire(upload)
    key = state.keys.lock(upload)
    try:
        redis_client.pexpire(key, 4500)  # 90 % of the 5 s TTL left
        assert locks.refresh_many([lock]) == [(True, False)]
        assert redis_client.pttl(key) <= 4500, "extended although most of its life was left"
        redis_client.pexpire(key, 1000)  # 20 % left
        assert locks.refresh_many([lock]) == [(True, False)]
        assert redis_client.pttl(key) > 4500, "a lock running low was not extended"
        redis_client.pexpire(key, 1000)
        assert lock.refresh() == (True, False)
        assert redis_client.pttl(key) > 4500, "a single refresh extends the lock to a full TTL"
    finally:
        lock.release()


def test_the_keeper_checks_less_often_only_when_thousands_of_writes_run() -> None:
    """A few writes: a release request is noticed within 0.2 s. Thousands (slow uploads): the
    checks thin out so they do not take the worker's time, but never beyond one a second."""
    from tusserver.locks.keeper import LockKeeper

    keeper = LockKeeper(read_timeout=60, interval=0.2)
    assert keeper.tick(0) == keeper.tick(10) == keeper.tick(200) == 0.2
    assert keeper.tick(500) == pytest.approx(0.5)
    assert keeper.tick(1000) == 1.0
    assert keeper.tick(100_000) == 1.0
