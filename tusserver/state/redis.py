"""Upload state in Redis: the only module that knows the key layout.

Keys (under the configurable prefix):
- `upload:<id>` hash: length ("" while deferred), offset, metadata (JSON), created, updated,
  expires, completed, owner, concat, members (JSON list), grant (the upload grant's id),
  metadata_binary (JSON: base64 of non-UTF-8 metadata values as sent), digests (JSON: RFC 9530
  name -> base64, "" = wanted).
- `upload:<id>:parts` sorted set (stores that keep parts): score = start, member = "start:size".
- `uploads` sorted set by creation time (listings; partial uploads are left out),
  `owner:<owner>` the same per owner, `expiry` sorted set by expiry time (the reaper).
- `refs:<partial id>` set of final uploads that use a partial upload.
- `gone:<id>` a tombstone so a terminated or expired upload answers 410, not 404.

The offset only moves through `commit_write`, one Lua script that checks the expected offset and
advances offset, part index and expiry together, so two writers can never both commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

from .. import backend_status
from ..errors import BackendUnavailable, InvalidHeader, OffsetMismatch, UploadNotFound
from ..models import Part, UploadInfo

log = logging.getLogger(__name__)

_COMMIT_WRITE = """
local cur = redis.call('HGET', KEYS[1], 'offset')
if not cur then return {'missing'} end
if cur ~= ARGV[1] then return {'mismatch', cur} end
if ARGV[7] ~= '' then
  local len = redis.call('HGET', KEYS[1], 'length')
  if len ~= '' and len ~= ARGV[7] then return {'length', len} end
  redis.call('HSET', KEYS[1], 'length', ARGV[7])
end
redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'updated', ARGV[3], 'expires', ARGV[4],
           'completed', ARGV[5])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], ARGV[6])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
end
for i = 8, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i] .. ':' .. ARGV[i + 1])
end
return {'ok'}
"""

_SET_LENGTH = """
local cur = redis.call('HGET', KEYS[1], 'length')
if not cur then return 'missing' end
if cur ~= '' then return cur end
redis.call('HSET', KEYS[1], 'length', ARGV[1], 'updated', ARGV[2])
return 'ok'
"""

_COMPLETE_FINAL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local completed = redis.call('HGET', KEYS[1], 'completed')
if completed and completed ~= '' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

_SET_FIELDS_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
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


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    uploads: list[UploadInfo]
    total: int


class RedisState:
    """Reads and changes upload state; every method is one round trip or one atomic script."""

    def __init__(self, client: redis.Redis, prefix: str = "tusserver:"):
        self.client = client
        self.prefix = prefix
        self._commit_write = client.register_script(_COMMIT_WRITE)
        self._set_length = client.register_script(_SET_LENGTH)
        self._set_fields = client.register_script(_SET_FIELDS_IF_EXISTS)
        self._complete_final = client.register_script(_COMPLETE_FINAL)

    # -- keys ------------------------------------------------------------------------------
    def _upload_key(self, upload_id: str) -> str:
        return f"{self.prefix}upload:{upload_id}"

    def _parts_key(self, upload_id: str) -> str:
        return f"{self.prefix}upload:{upload_id}:parts"

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}"

    def _refs_key(self, upload_id: str) -> str:
        return f"{self.prefix}refs:{upload_id}"

    def _gone_key(self, upload_id: str) -> str:
        return f"{self.prefix}gone:{upload_id}"

    @property
    def _uploads_key(self) -> str:
        return f"{self.prefix}uploads"

    @property
    def _expiry_key(self) -> str:
        return f"{self.prefix}expiry"

    # -- reads -----------------------------------------------------------------------------
    def ping(self) -> None:
        with translate_errors():
            self.client.ping()

    def get(self, upload_id: str, with_parts: bool = False) -> UploadInfo | None:
        """The upload's state, or None if there is none."""
        with translate_errors():
            if not with_parts:
                return _decode(upload_id, self.client.hgetall(self._upload_key(upload_id)))
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self._upload_key(upload_id))
            pipe.zrange(self._parts_key(upload_id), 0, -1)
            fields, members = pipe.execute()
        info = _decode(upload_id, fields)
        return info.evolve(parts=_decode_parts(members)) if info else None

    def is_gone(self, upload_id: str) -> bool:
        """True for an upload that was terminated or expired (recently enough to remember)."""
        with translate_errors():
            return bool(self.client.exists(self._gone_key(upload_id)))

    def list(self, limit: int, offset: int = 0, owner: str | None = None) -> Page:
        """Complete and incomplete uploads, newest first (partial uploads are not listed)."""
        index = self._owner_key(owner) if owner else self._uploads_key
        with translate_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.zrevrange(index, offset, offset + limit - 1)
            pipe.zcard(index)
            ids, total = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for upload_id in ids:
                pipe.hgetall(self._upload_key(upload_id))
            rows = pipe.execute()
        uploads = [info for uid, row in zip(ids, rows, strict=True) if (info := _decode(uid, row))]
        return Page(uploads, total)

    def expired(self, now: float, limit: int = 100) -> list[str]:
        """Ids of incomplete uploads whose expiry time has passed."""
        with translate_errors():
            return list(self.client.zrangebyscore(self._expiry_key, "-inf", now, 0, limit))

    def referencing_finals(self, partial_id: str) -> set[str]:
        """The final uploads built from this partial upload."""
        with translate_errors():
            return set(self.client.smembers(self._refs_key(partial_id)))

    def all_ids(self) -> Iterator[str]:
        """Every upload id in the state store (scanning; for maintenance commands)."""
        pattern = f"{self.prefix}upload:*"
        with translate_errors():
            for key in self.client.scan_iter(match=pattern, count=500):
                rest = key[len(self.prefix) + len("upload:") :]
                if ":" not in rest:
                    yield rest

    # -- writes ----------------------------------------------------------------------------
    def create(self, info: UploadInfo) -> None:
        """Record a new upload and index it for listings and expiry."""
        with translate_errors():
            pipe = self.client.pipeline(transaction=True)
            self._queue_create(pipe, info)
            pipe.execute()

    def _queue_create(self, pipe: Any, info: UploadInfo) -> None:
        pipe.hset(self._upload_key(info.id), mapping=_encode(info))
        if not info.is_partial:
            pipe.zadd(self._uploads_key, {info.id: info.created})
            if info.owner:
                pipe.zadd(self._owner_key(info.owner), {info.id: info.created})
        if info.expires is not None and not info.is_complete:
            pipe.zadd(self._expiry_key, {info.id: info.expires})
        for member in info.members:
            pipe.sadd(self._refs_key(member), info.id)
            # A partial upload in use cannot expire; terminating the last final that uses it
            # removes it. Left in the index it would only be looked at, and skipped, on every
            # cleanup.
            pipe.zrem(self._expiry_key, member)

    def restore(self, info: UploadInfo) -> None:
        """Write an upload's whole state (parts included), replacing what was there."""
        with translate_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._upload_key(info.id), self._parts_key(info.id))
            self._queue_create(pipe, info)
            for part in info.parts:
                pipe.zadd(self._parts_key(info.id), {_part_member(part): part.start})
            pipe.execute()

    def commit_write(
        self,
        info: UploadInfo,
        new_offset: int,
        new_parts: Iterable[Part],
        updated: float,
        expires: float | None,
        completed: float | None,
        length: int | None = None,
    ) -> UploadInfo:
        """Advance the offset from `info.offset` to `new_offset`, with the new parts, atomically.

        `length` declares a deferred length in the same step, so a PATCH that carries
        Upload-Length either commits both or neither. Raises OffsetMismatch if another request
        moved the offset meanwhile (it cannot while we hold the lock, so this is a safety net),
        InvalidHeader if a different length was set meanwhile, and UploadNotFound if the upload
        vanished.
        """
        args: list[Any] = [
            str(info.offset),
            str(new_offset),
            repr(updated),
            "" if expires is None else repr(expires),
            "" if completed is None else repr(completed),
            info.id,
            "" if length is None else str(length),
        ]
        parts = tuple(new_parts)
        for part in parts:
            args += [str(part.start), str(part.size)]
        keys = [self._upload_key(info.id), self._parts_key(info.id), self._expiry_key]
        with translate_errors():
            result = self._commit_write(keys=keys, args=args)
        if result[0] == "missing":
            raise UploadNotFound()
        if result[0] == "mismatch":
            raise OffsetMismatch(
                f"offset moved to {result[1]} meanwhile", headers={"Upload-Offset": result[1]}
            )
        if result[0] == "length":
            raise InvalidHeader("Upload-Length is already set and cannot change")
        return info.evolve(
            length=info.length if length is None else length,
            offset=new_offset,
            updated=updated,
            expires=expires,
            completed=completed,
            parts=info.parts + parts,
        )

    def set_length(self, info: UploadInfo, length: int, updated: float) -> bool:
        """Fix a deferred length once; False if the length was already set."""
        with translate_errors():
            result = self._set_length(
                keys=[self._upload_key(info.id)], args=[str(length), repr(updated)]
            )
        if result == "missing":
            raise UploadNotFound()
        return result == "ok"

    def set_metadata(self, info: UploadInfo, metadata: dict[str, str], updated: float) -> None:
        """Replace the metadata (rename) if the upload still exists."""
        fields = ["metadata", json.dumps(metadata), "updated", repr(updated)]
        with translate_errors():
            done = self._set_fields(keys=[self._upload_key(info.id)], args=fields)
        if not done:
            raise UploadNotFound()

    def set_digests(self, info: UploadInfo, digests: dict[str, str]) -> None:
        """Record the digests of a complete upload (if it still exists)."""
        fields = ["digests", json.dumps(digests)]
        with translate_errors():
            self._set_fields(keys=[self._upload_key(info.id)], args=fields)

    def set_metadata_binary(self, info: UploadInfo, binary: dict[str, str]) -> None:
        """Replace the as-sent base64 of non-UTF-8 metadata values (a rename drops one)."""
        fields = ["metadata_binary", json.dumps(binary)]
        with translate_errors():
            self._set_fields(keys=[self._upload_key(info.id)], args=fields)

    def complete_final(self, info: UploadInfo, length: int, completed: float) -> UploadInfo | None:
        """Mark a final upload complete once its last partial upload is; None if it is gone.

        Only the first caller changes anything, so post-finish fires once.
        """
        fields = ["length", str(length), "offset", str(length), "completed", repr(completed)]
        with translate_errors():
            done = self._complete_final(keys=[self._upload_key(info.id)], args=fields)
        if not done:
            return None
        return info.evolve(length=length, offset=length, completed=completed)

    def delete(self, info: UploadInfo, gone_ttl: int) -> None:
        """Forget the upload everywhere and leave a tombstone for `gone_ttl` seconds."""
        with translate_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._upload_key(info.id), self._parts_key(info.id))
            pipe.zrem(self._uploads_key, info.id)
            pipe.zrem(self._expiry_key, info.id)
            if info.owner:
                pipe.zrem(self._owner_key(info.owner), info.id)
            for member in info.members:
                pipe.srem(self._refs_key(member), info.id)
            if gone_ttl > 0:
                pipe.set(self._gone_key(info.id), "1", ex=gone_ttl)
            pipe.execute()


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
    return f"{part.start}:{part.size}"


def _decode_parts(members: list[str]) -> tuple[Part, ...]:
    parts = []
    for member in members:
        start, _, size = member.partition(":")
        parts.append(Part(int(start), int(size)))
    return tuple(sorted(parts))
