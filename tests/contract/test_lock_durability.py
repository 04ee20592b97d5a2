"""What an upload lock costs on disk, and what becomes of it when Valkey dies.

The embedded Valkey runs with `appendfsync always`: every write that reaches its append-only
file waits for a disk flush before the reply. Only the commit (the offset a client is told)
needs that. Taking a lock writes nothing to the file, so a PATCH waits for one flush, not two;
its release is written, so a lock that an AOF rewrite caught cannot come back after it was let
go. Against a real Valkey, killed with SIGKILL and restarted from its files by the supervisor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tusserver.embedded_redis import EmbeddedRedis
from tusserver.errors import LockLost
from tusserver.locks.holder import new_token
from tusserver.models import UploadInfo, new_upload_id
from tusserver.state.redis import RedisState

TTL_MS = 60_000


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "valkey", persistent=True, fsync="always").start()
    server.supervise(interval=0.05)
    yield server
    server.stop()


@pytest.fixture
def state(valkey: EmbeddedRedis) -> RedisState:
    return RedisState(redis.Redis.from_url(valkey.url, decode_responses=True), "durability:")


def aof_bytes(valkey: EmbeddedRedis) -> int:
    return sum(path.stat().st_size for path in valkey.directory.rglob("*.aof"))


def kill_and_wait_for_restart(valkey: EmbeddedRedis, state: RedisState) -> None:
    before = valkey.restarts
    assert valkey.process is not None
    valkey.process.kill()
    deadline = time.monotonic() + 20
    while valkey.restarts == before:
        assert time.monotonic() < deadline, "the supervisor did not restart Valkey"
        time.sleep(0.02)
    while True:
        try:
            state.client.ping()
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, "the restarted Valkey does not answer"
            time.sleep(0.02)


def new_upload(state: RedisState) -> UploadInfo:
    info = UploadInfo(id=new_upload_id(), length=100, created=1.0, updated=1.0)
    state.create(info)
    return info


def commit(state: RedisState, info: UploadInfo, token: str, offset: int) -> UploadInfo:
    return state.commit_write(info, offset, (), token, 2.0, None, None, release=True)


def test_taking_a_lock_writes_nothing_to_disk_and_the_commit_does(
    valkey: EmbeddedRedis, state: RedisState
) -> None:
    info = new_upload(state)
    token = new_token()
    before = aof_bytes(valkey)
    assert state.try_lock(info.id, token, TTL_MS).acquired
    assert aof_bytes(valkey) == before, "taking a lock went to the append-only file"
    committed = commit(state, info, token, 40)
    assert committed.offset == 40
    assert aof_bytes(valkey) > before, "the commit must be on disk before its reply"


def test_extending_a_lock_writes_nothing_to_disk(valkey: EmbeddedRedis, state: RedisState) -> None:
    info = new_upload(state)
    token = new_token()
    assert state.try_lock(info.id, token, 1_000).acquired
    before = aof_bytes(valkey)
    assert state.refresh_lock(info.id, token, TTL_MS)[0]
    assert state.client.pttl(state.keys.lock(info.id)) > 30_000, "the lock was not extended"
    assert aof_bytes(valkey) == before, "extending a lock went to the append-only file"


def test_a_commit_survives_kill_9_and_a_lock_held_then_is_gone(
    valkey: EmbeddedRedis, state: RedisState
) -> None:
    """The acknowledged offset is back after the restart; the writer whose lock died with
    Valkey is fenced, and the next writer gets in at once."""
    info = new_upload(state)
    first = new_token()
    assert state.try_lock(info.id, first, TTL_MS).acquired
    info = commit(state, info, first, 40)
    second = new_token()
    assert state.try_lock(info.id, second, TTL_MS).acquired

    kill_and_wait_for_restart(valkey, state)

    restored = state.get(info.id)
    assert restored is not None and restored.offset == 40
    with pytest.raises(LockLost):
        commit(state, restored, second, 90)
    assert state.get(info.id).offset == 40  # type: ignore[union-attr]
    third = new_token()
    assert state.try_lock(info.id, third, TTL_MS).acquired, "a lock outlived the restart"
    assert commit(state, restored, third, 90).offset == 90


def test_a_lock_an_aof_rewrite_caught_does_not_come_back_once_released(
    valkey: EmbeddedRedis, state: RedisState
) -> None:
    info = new_upload(state)
    token = new_token()
    assert state.try_lock(info.id, token, TTL_MS).acquired
    state.client.bgrewriteaof()  # the rewrite writes the lock into the new base file
    deadline = time.monotonic() + 20
    while state.client.info("persistence")["aof_rewrite_in_progress"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    commit(state, info, token, 40)  # releases the lock

    kill_and_wait_for_restart(valkey, state)

    assert state.get(info.id).offset == 40  # type: ignore[union-attr]
    assert state.try_lock(info.id, new_token(), TTL_MS).acquired, "a released lock came back"
