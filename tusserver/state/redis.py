"""Upload state in Redis: the only module that talks to Redis about uploads.

Key names come from `Keys` (state/keys.py); the layout is described in docs/architecture.md.
Everything that must be atomic is one Lua script:
- `try_lock` takes the upload's lock and reads its state in one round trip;
- `commit_write` checks the writer's lock token (a fencing token) and the expected offset, then
  advances offset, parts and expiry, and may release the lock in the same step;
- `create_final` checks the partial uploads and references them in the same step, and `delete`
  refuses a partial upload that a final still references, so a final never loses a member.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from redis.exceptions import RedisError

from .. import backend_status
from ..errors import (
    BackendUnavailable,
    Forbidden,
    InvalidConcat,
    InvalidHeader,
    LockLost,
    OffsetMismatch,
    UploadNotFound,
)
from ..models import Part, UploadInfo
from .base import LockAttempt, LockScope, Page
from .catalog import Catalog, CatalogQuery
from .keys import Keys

__all__ = ["Page", "RedisState", "connect", "translate_errors"]

log = logging.getLogger(__name__)

_TRY_LOCK = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing', redis.call('EXISTS', KEYS[3])}
end
if ARGV[4] == '1' then
  local owner = redis.call('HGET', KEYS[1], 'owner') or ''
  local grant = redis.call('HGET', KEYS[1], 'grant') or ''
  if owner ~= ARGV[5] or (ARGV[6] ~= '' and grant ~= ARGV[6]) then return {'foreign'} end
end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'locked', redis.call('GET', KEYS[4]) or ''}
end
if ARGV[3] == '0' then return {'ok'} end
local parts = {}
if ARGV[3] == '2' then parts = redis.call('ZRANGE', KEYS[2], 0, -1) end
return {'ok', redis.call('HGETALL', KEYS[1]), parts}
"""

_REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, redis.call('EXISTS', KEYS[2])}
"""

_DELETE_IF_VALUE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_COMMIT_WRITE = """
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return {'fenced'} end
local cur = redis.call('HGET', KEYS[1], 'offset')
if not cur then return {'missing'} end
if cur ~= ARGV[2] then return {'mismatch', cur} end
if ARGV[8] ~= '' then
  local len = redis.call('HGET', KEYS[1], 'length')
  if len ~= '' and len ~= ARGV[8] then return {'length', len} end
  redis.call('HSET', KEYS[1], 'length', ARGV[8])
end
local expires = ARGV[5]
if ARGV[6] ~= '' and redis.call('SCARD', KEYS[5]) > 0 then expires = '' end
redis.call('HSET', KEYS[1], 'offset', ARGV[3], 'updated', ARGV[4], 'expires', expires,
           'completed', ARGV[6])
if expires == '' then
  redis.call('ZREM', KEYS[3], ARGV[7])
else
  redis.call('ZADD', KEYS[3], expires, ARGV[7])
end
for i = 10, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[9] == '1' then redis.call('DEL', KEYS[4]) end
if expires == '' and ARGV[5] ~= '' then return {'ok', 'kept'} end
return {'ok'}
"""

_CREATE_FINAL_SCRIPT = """
local now = tonumber(ARGV[2])
local first = 6 + tonumber(ARGV[5]) * 2
for i = first, #ARGV do
  local j = i - first
  local f = redis.call('HMGET', KEYS[3 + 2 * j], 'concat', 'length', 'offset', 'expires')
  if not f[3] then return {'missing', ARGV[i]} end
  if f[4] and f[4] ~= '' and tonumber(f[4]) <= now then return {'missing', ARGV[i]} end
  if f[1] ~= 'partial' then return {'not-partial', ARGV[i]} end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6, first - 1))
for i = first, #ARGV do
  local j = i - first
  redis.call('SADD', KEYS[4 + 2 * j], ARGV[1])
  local f = redis.call('HMGET', KEYS[3 + 2 * j], 'length', 'offset')
  if f[1] and f[1] ~= '' and tonumber(f[1]) == tonumber(f[2]) then
    redis.call('HSET', KEYS[3 + 2 * j], 'expires', '')
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
return {'ok'}
"""

_COMPLETE_FINAL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local completed = redis.call('HGET', KEYS[1], 'completed')
if completed and completed ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'length', ARGV[1], 'offset', ARGV[1], 'completed', ARGV[2])
for i = 3, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HSET', KEYS[i], 'expires', '') end
end
return 1
"""

_SET_FIELDS_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

_DELETE = """
if ARGV[3] == '1' and redis.call('SCARD', KEYS[3]) > 0 then return {'referenced'} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[5], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[4], '1', 'EX', ARGV[2]) end
local unused = {'ok'}
for i = 5, #ARGV do
  local refs = KEYS[6 + (i - 5)]
  redis.call('SREM', refs, ARGV[1])
  if redis.call('SCARD', refs) == 0 then table.insert(unused, ARGV[i]) end
end
return unused
"""


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn any Redis client failure into the catalogue's 503."""
    try:
        yield
    except RedisError as exc:
        backend_status.failed(backend_status.REDIS, exc)  # logs once per outage
        raise BackendUnavailable("state store (Redis) unavailable; try again later") from exc
    else:
        backend_status.ok(backend_status.REDIS)


def connect(url: str, max_connections: int = 64) -> redis.Redis:
    """A client with short timeouts, so an outage is a quick 503 rather than a hung request.

    The pool is bounded and blocking: under the gevent worker thousands of requests of one
    process may want Redis at the same moment, and each would otherwise open a connection of
    its own (redis-py's default pool refuses past 100). A request waits up to 10 s for one of
    `max_connections`, then fails like any other Redis outage.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=10,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    return redis.Redis(connection_pool=pool)


class RedisState:
    """Reads and changes upload state; every method is one round trip or one atomic script."""

    def __init__(self, client: redis.Redis, prefix: str = "tusserver:"):
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self._try_lock = client.register_script(_TRY_LOCK)
        self._refresh_lock = client.register_script(_REFRESH_LOCK)
        self._delete_if_value = client.register_script(_DELETE_IF_VALUE)
        self._commit_write = client.register_script(_COMMIT_WRITE)
        self._create_final = client.register_script(_CREATE_FINAL_SCRIPT)
        self._set_fields = client.register_script(_SET_FIELDS_IF_EXISTS)
        self._complete_final = client.register_script(_COMPLETE_FINAL)
        self._delete = client.register_script(_DELETE)
        self.catalog = Catalog(client, self.keys)

    # -- reads -----------------------------------------------------------------------------
    def ping(self) -> None:
        with translate_errors():
            self.client.ping()

    def get(self, upload_id: str, with_parts: bool = False) -> UploadInfo | None:
        """The upload's state, or None if there is none."""
        with translate_errors():
            if not with_parts:
                return _decode(upload_id, self.client.hgetall(self.keys.upload(upload_id)))
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.upload(upload_id))
            pipe.zrange(self.keys.parts(upload_id), 0, -1)
            fields, members = pipe.execute()
        info = _decode(upload_id, fields)
        return info.evolve(parts=_decode_parts(members)) if info else None

    def is_gone(self, upload_id: str) -> bool:
        """True for an upload that was terminated or expired (recently enough to remember)."""
        with translate_errors():
            return bool(self.client.exists(self.keys.gone(upload_id)))

    def list(
        self,
        limit: int,
        offset: int = 0,
        owner: str | None = None,
        query: CatalogQuery | None = None,
    ) -> Page:
        """A page of complete and incomplete uploads matching `query` (newest first without
        one; partial uploads are not listed), and how many match in all.

        An id whose state is gone (a removal that failed between state and index) is left out
        and taken out of the indexes, so the next listing is right again.
        """
        with translate_errors():
            ids, total = self.catalog.query(query or CatalogQuery(), limit, offset, owner)
            pipe = self.client.pipeline(transaction=False)
            for upload_id in ids:
                pipe.hgetall(self.keys.upload(upload_id))
            rows = pipe.execute()
            uploads: list[UploadInfo] = []
            for upload_id, row in zip(ids, rows, strict=True):
                info = _decode(upload_id, row)
                if info is None:
                    self.catalog.remove(upload_id)
                    total -= 1
                else:
                    uploads.append(info)
        return Page(uploads, max(total, 0))

    def reindex(self, upload_id: str) -> bool:
        """Put an upload back in the listing indexes from its state; False if it has none."""
        with translate_errors():
            info = _decode(upload_id, self.client.hgetall(self.keys.upload(upload_id)))
            if info is None:
                self.catalog.remove(upload_id)
                return False
            self.catalog.index(info)
        return True

    def expired(self, now: float, limit: int = 100) -> list[str]:
        """Ids of uploads whose expiry time has passed."""
        with translate_errors():
            return list(self.client.zrangebyscore(self.keys.expiry, "-inf", now, 0, limit))

    def referencing_finals(self, partial_id: str) -> set[str]:
        """The final uploads built from this partial upload."""
        with translate_errors():
            return set(self.client.smembers(self.keys.refs(partial_id)))

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that have live state."""
        wanted = list(ids)
        with translate_errors():
            pipe = self.client.pipeline(transaction=False)
            for upload_id in wanted:
                pipe.exists(self.keys.upload(upload_id))
            found = pipe.execute()
        return {uid for uid, exists in zip(wanted, found, strict=True) if exists}

    # -- creation --------------------------------------------------------------------------
    def create(self, info: UploadInfo) -> None:
        """Record a new upload and index it for listings and expiry."""
        with translate_errors():
            pipe = self.client.pipeline(transaction=True)
            self._queue_create(pipe, info)
            pipe.execute()
            self.catalog.index(info)

    def _queue_create(self, pipe: Any, info: UploadInfo) -> None:
        """The upload's own keys and its expiry; the catalog indexes it right after."""
        pipe.hset(self.keys.upload(info.id), mapping=_encode(info))
        if info.expires is not None:
            pipe.zadd(self.keys.expiry, {info.id: info.expires})

    def create_final(self, info: UploadInfo, now: float) -> None:
        """Record a final upload, checking and referencing its partials in one script."""
        fields = _encode(info)
        keys = [self.keys.upload(info.id), self.keys.expiry]
        args: list[Any] = [info.id, repr(now), repr(info.created), "1" if info.owner else ""]
        args.append(str(len(fields)))
        for name, value in fields.items():
            args += [name, value]
        for member in info.members:
            keys += [self.keys.upload(member), self.keys.refs(member)]
            args.append(member)
        with translate_errors():
            result = self._create_final(keys=keys, args=args)
            if result[0] == "ok":
                self.catalog.index(info)
        if result[0] == "missing":
            raise InvalidConcat(f"partial upload {result[1]} does not exist")
        if result[0] == "not-partial":
            raise InvalidConcat(f"upload {result[1]} is not a partial upload")
        if result[0] == "incomplete":
            total = result[3] or "unknown"
            raise InvalidConcat(
                f"partial upload {result[1]} is not complete ({result[2]} of {total} bytes)"
            )

    def restore(self, info: UploadInfo) -> None:
        """Write an upload's whole state (parts included), replacing what was there.

        A partial upload a final uses does not expire: restoring a final clears its members'
        expiry, and a partial restored after its final keeps none.
        """
        with translate_errors():
            if info.is_partial and self.client.scard(self.keys.refs(info.id)):
                info = info.evolve(expires=None)
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.keys.upload(info.id), self.keys.parts(info.id))
            self._queue_create(pipe, info)
            for part in info.parts:
                pipe.zadd(self.keys.parts(info.id), {_part_member(part): part.start})
            for member in info.members:
                pipe.sadd(self.keys.refs(member), info.id)
                pipe.zrem(self.keys.expiry, member)
            pipe.execute()
            for member in info.members:
                self._set_fields(keys=[self.keys.upload(member)], args=["expires", ""])
            self.catalog.index(info)

    # -- writes ----------------------------------------------------------------------------
    def commit_write(
        self,
        info: UploadInfo,
        new_offset: int,
        new_parts: Iterable[Part],
        token: str,
        updated: float,
        expires: float | None,
        completed: float | None,
        length: int | None = None,
        release: bool = False,
    ) -> UploadInfo:
        """Advance the offset from `info.offset` to `new_offset`, with the new parts, atomically.

        Fenced: only while `token` holds the upload's lock. `length` declares a deferred length
        in the same step, so a PATCH that carries Upload-Length commits both or neither.
        `release` deletes the lock in the same step (the hot path's last round trip).
        """
        args: list[Any] = [
            token,
            str(info.offset),
            str(new_offset),
            repr(updated),
            "" if expires is None else repr(expires),
            "" if completed is None else repr(completed),
            info.id,
            "" if length is None else str(length),
            "1" if release else "0",
        ]
        parts = tuple(new_parts)
        for part in parts:
            args += [str(part.start), _part_member(part)]
        keys = [
            self.keys.upload(info.id),
            self.keys.parts(info.id),
            self.keys.expiry,
            self.keys.lock(info.id),
            self.keys.refs(info.id),
        ]
        with translate_errors():
            result = self._commit_write(keys=keys, args=args)
        if result[0] == "fenced":
            raise LockLost()
        if result[0] == "missing":
            raise UploadNotFound()
        if result[0] == "mismatch":
            raise OffsetMismatch(
                f"offset moved to {result[1]} meanwhile", headers={"Upload-Offset": result[1]}
            )
        if result[0] == "length":
            raise InvalidHeader("Upload-Length is already set and cannot change")
        committed = info.evolve(
            length=info.length if length is None else length,
            offset=new_offset,
            updated=updated,
            expires=None if completed is not None and info.is_partial and result[1:] else expires,
            completed=completed,
            parts=info.parts + parts,
        )
        with translate_errors():
            self.catalog.touch(committed)
        return committed

    def set_metadata(self, info: UploadInfo, metadata: dict[str, str], updated: float) -> None:
        """Replace the metadata (rename) if the upload still exists."""
        fields = ["metadata", json.dumps(metadata), "updated", repr(updated)]
        with translate_errors():
            done = self._set_fields(keys=[self.keys.upload(info.id)], args=fields)
            if done:
                self.catalog.index(info.evolve(metadata=metadata, updated=updated))
        if not done:
            raise UploadNotFound()

    def set_digests(self, info: UploadInfo, digests: dict[str, str]) -> None:
        """Record the digests of a complete upload (if it still exists)."""
        fields = ["digests", json.dumps(digests)]
        with translate_errors():
            self._set_fields(keys=[self.keys.upload(info.id)], args=fields)

    def set_metadata_binary(self, info: UploadInfo, binary: dict[str, str]) -> None:
        """Replace the as-sent base64 of non-UTF-8 metadata values (a rename drops one)."""
        fields = ["metadata_binary", json.dumps(binary)]
        with translate_errors():
            self._set_fields(keys=[self.keys.upload(info.id)], args=fields)

    def complete_final(self, info: UploadInfo, length: int, completed: float) -> UploadInfo | None:
        """Mark a final upload complete once its last partial upload is; None if it is gone.

        Only the first caller changes anything, so post-finish fires once. Its partial uploads
        leave the expiry index with it: they are part of a complete file now.
        """
        args = [str(length), repr(completed), *info.members]
        keys = [self.keys.upload(info.id), self.keys.expiry]
        keys += [self.keys.upload(member) for member in info.members]
        with translate_errors():
            done = self._complete_final(keys=keys, args=args)
            if done:
                finished = info.evolve(length=length, offset=length, completed=completed)
                self.catalog.touch(finished)
        if not done:
            return None
        return finished

    def delete(self, info: UploadInfo, gone_ttl: int) -> list[str]:
        """Forget the upload everywhere and leave a tombstone for `gone_ttl` seconds.

        A partial upload that a final still references is refused (`Forbidden`), checked in the
        same script that deletes, so a final created meanwhile never loses its member. Returns
        the members of a final upload that no final references any more.
        """
        keys = [
            self.keys.upload(info.id),
            self.keys.parts(info.id),
            self.keys.refs(info.id),
            self.keys.gone(info.id),
            self.keys.expiry,
        ]
        args: list[Any] = [info.id, str(max(gone_ttl, 0)), "1", "1" if info.owner else "0"]
        for member in info.members:
            keys.append(self.keys.refs(member))
            args.append(member)
        with translate_errors():
            result = self._delete(keys=keys, args=args)
            if result[0] != "referenced":
                self.catalog.remove(info.id, info.owner)
        if result[0] == "referenced":
            raise Forbidden("this partial upload is part of a final upload; terminate that one")
        return list(result[1:])

    # -- the per-upload lock ---------------------------------------------------------------
    def try_lock(
        self,
        upload_id: str,
        token: str,
        ttl_ms: int,
        read: bool = False,
        with_parts: bool = False,
        scope: LockScope | None = None,
    ) -> LockAttempt:
        """Take the lock if it is free (and read the state with it): one round trip.

        With a `scope`, an upload of another owner (or another grant) is answered as missing
        and its lock is never touched: a stranger cannot even briefly hold someone's upload.
        """
        keys = [
            self.keys.upload(upload_id),
            self.keys.parts(upload_id),
            self.keys.gone(upload_id),
            self.keys.lock(upload_id),
        ]
        mode = "2" if read and with_parts else "1" if read else "0"
        with translate_errors():
            scoped = ["1", scope.owner, scope.grant or ""] if scope else ["0", "", ""]
            result = self._try_lock(keys=keys, args=[token, ttl_ms, mode, *scoped])
        if result[0] == "foreign":
            return LockAttempt(False, exists=False)
        if result[0] == "missing":
            return LockAttempt(False, exists=False, gone=bool(result[1]))
        if result[0] == "locked":
            return LockAttempt(False, holder=result[1] or None)
        if not read:
            return LockAttempt(True)
        flat = result[1]
        info = _decode(upload_id, dict(zip(flat[::2], flat[1::2], strict=True)))
        if info is not None and with_parts:
            info = info.evolve(parts=_decode_parts(result[2]))
        return LockAttempt(True, info=info, exists=info is not None)

    def refresh_lock(self, upload_id: str, token: str, ttl_ms: int) -> tuple[bool, bool]:
        keys = [self.keys.lock(upload_id), self.keys.release(upload_id)]
        with translate_errors():
            held, asked = self._refresh_lock(keys=keys, args=[token, ttl_ms])
        return bool(held), bool(asked)

    def refresh_locks(self, locks: list[tuple[str, str]], ttl_ms: int) -> list[tuple[bool, bool]]:
        """`refresh_lock` for many (upload id, token) pairs in one pipelined round trip."""
        if not locks:
            return []
        with translate_errors():
            pipe = self.client.pipeline(transaction=False)
            for upload_id, token in locks:
                keys = [self.keys.lock(upload_id), self.keys.release(upload_id)]
                self._refresh_lock(keys=keys, args=[token, ttl_ms], client=pipe)
            answers = pipe.execute()
        return [(bool(held), bool(asked)) for held, asked in answers]

    def unlock(self, upload_id: str, token: str) -> bool:
        with translate_errors():
            return bool(self._delete_if_value(keys=[self.keys.lock(upload_id)], args=[token]))

    def request_release(self, upload_id: str, token: str, ttl_ms: int) -> None:
        with translate_errors():
            self.client.set(self.keys.release(upload_id), token, px=ttl_ms)

    def withdraw_release(self, upload_id: str, token: str) -> None:
        with translate_errors():
            self._delete_if_value(keys=[self.keys.release(upload_id)], args=[token])

    def lease(self, name: str, holder: str, seconds: int) -> bool:
        """A named lease (the reaper's turn): True if `holder` got it."""
        key = self.keys.reaper if name == "reaper" else f"{self.prefix}lease:{name}"
        with translate_errors():
            return bool(self.client.set(key, holder, nx=True, ex=max(seconds, 1)))


def _encode(info: UploadInfo) -> dict[str, str]:
    return {
        "length": "" if info.length is None else str(info.length),
        "offset": str(info.offset),
        "metadata": json.dumps(info.metadata),
        "created": repr(info.created),
        "updated": repr(info.updated),
        "expires": "" if info.expires is None else repr(info.expires),
        "completed": "" if info.completed is None else repr(info.completed),
        "owner": info.owner or "",
        "concat": info.concat or "",
        "members": json.dumps(list(info.members)),
        "grant": info.grant or "",
        "metadata_binary": json.dumps(info.metadata_binary),
        "digests": json.dumps(info.digests),
    }


def _decode(upload_id: str, fields: dict[str, str]) -> UploadInfo | None:
    if not fields or "offset" not in fields:
        return None
    return UploadInfo(
        id=upload_id,
        length=int(fields["length"]) if fields.get("length") else None,
        offset=int(fields["offset"]),
        metadata=json.loads(fields.get("metadata") or "{}"),
        created=float(fields.get("created") or 0),
        updated=float(fields.get("updated") or 0),
        expires=float(fields["expires"]) if fields.get("expires") else None,
        completed=float(fields["completed"]) if fields.get("completed") else None,
        owner=fields.get("owner") or None,
        concat=fields.get("concat") or None,
        members=tuple(json.loads(fields.get("members") or "[]")),
        grant=fields.get("grant") or None,
        metadata_binary=json.loads(fields.get("metadata_binary") or "{}"),
        digests=json.loads(fields.get("digests") or "{}"),
    )


def _part_member(part: Part) -> str:
    """`start:size` or `start:size:attempt` (the member of the parts sorted set)."""
    base = f"{part.start}:{part.size}"
    return f"{base}:{part.attempt}" if part.attempt else base


def _decode_parts(members: list[str]) -> tuple[Part, ...]:
    parts = []
    for member in members:
        start, size, attempt = ([*member.split(":", 2), ""])[:3]
        parts.append(Part(int(start), int(size), attempt))
    return tuple(sorted(parts))
