"""The per-upload lock against a real Redis: one holder, release requests, dead holders."""

from __future__ import annotations

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
