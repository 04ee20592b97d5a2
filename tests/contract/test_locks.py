"""The per-upload lock against a real Redis: one holder, release requests, no stale requests."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tusserver.errors import UploadLocked
from tusserver.locks.redis import LockManager

UPLOAD = "a" * 32


@pytest.fixture
def locks(redis_client: redis.Redis, redis_prefix: str) -> LockManager:
    return LockManager(redis_client, redis_prefix, ttl=5, wait=0.3, poll=0.01)


def test_second_request_is_refused_and_withdraws_its_release_request(locks: LockManager) -> None:
    holder = locks.acquire(UPLOAD)
    with pytest.raises(UploadLocked):
        locks.acquire(UPLOAD, wait=0.1)
    assert not holder.release_requested(), "a request that gave up left its release request"
    holder.release()
    fresh = locks.acquire(UPLOAD, wait=0)
    assert not fresh.release_requested(), "the next writer would be interrupted for nothing"
    fresh.release()


def test_waiting_request_asks_the_holder_and_gets_in_when_it_lets_go(locks: LockManager) -> None:
    holder = locks.acquire(UPLOAD)

    def holder_reacts() -> None:
        while not holder.release_requested():
            time.sleep(0.01)
        holder.release()

    thread = threading.Thread(target=holder_reacts)
    thread.start()
    newcomer = locks.acquire(UPLOAD, wait=2)
    thread.join()
    assert not newcomer.release_requested()
    newcomer.release()


def test_reaper_style_acquire_never_asks_a_writer_to_leave(locks: LockManager) -> None:
    holder = locks.acquire(UPLOAD)
    with pytest.raises(UploadLocked):
        locks.acquire(UPLOAD, wait=0, ask_release=False)
    assert not holder.release_requested()
    holder.release()


def test_only_the_holder_can_refresh_or_release(
    locks: LockManager, redis_client: redis.Redis
) -> None:
    holder = locks.acquire(UPLOAD)
    redis_client.delete(locks.lock_key(UPLOAD))  # the lock expired...
    other = locks.acquire(UPLOAD, wait=0)  # ...and someone else took it
    assert holder.refresh() is False
    holder.release()  # must not free the other's lock
    with pytest.raises(UploadLocked):
        locks.acquire(UPLOAD, wait=0, ask_release=False)
    assert other.refresh() is True
    other.release()
    locks.acquire(UPLOAD, wait=0).release()
