"""Upload state in Redis: the only module that talks to Redis about uploads.

Key names come from `Keys` (state/keys.py); the layout is described in docs/architecture.md.
Everything that must be atomic is one Lua script on the keys of one upload (one Cluster slot):
- `try_lock` takes the upload's lock and reads its state in one round trip;
- `commit_write` checks the writer's lock token (a fencing token) and the expected offset, then
  advances offset, parts and expiry, and may release the lock in the same step;
- `create_final` checks and references each partial upload in one script in the partial's slot,
  and `delete` refuses, in the same slot, a partial upload that a final still references, so a
  final never loses a member.
Indexes that span uploads (listings, the sharded expiry index) are updated by separate commands
in the same round trip (`Batch`: one per node), state first; their readers heal what a crash
between the two leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

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
from .batch import Batch
from .catalog import Catalog, CatalogQuery
from .connect import REDIS_ERRORS
from .keys import Keys
from .replication import ReplicaWait

__all__ = ["Page", "RedisState", "translate_errors"]

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
redis.set_repl(redis.REPL_NONE)
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'locked', redis.call('GET', KEYS[4]) or ''}
end
if ARGV[3] == '0' then return {'ok'} end
local parts = {}
if ARGV[3] == '2' then parts = redis.call('ZRANGE', KEYS[2], 0, -1) end
return {'ok', redis.call('HGETALL', KEYS[1]), parts}
"""
"""Take a lock, and read the upload with it. The lock is taken in memory only
(`redis.set_repl(redis.REPL_NONE)`: neither the append-only file nor replicas see the SET), so
with `appendfsync always` taking it waits for no disk flush; only the commit does, and that is
the write whose durability a client is promised. A lock is only worth its holder's fenced
commit, and that is safe either way: after a Valkey restart or a failover the lock is gone (or,
if an AOF rewrite caught it, it comes back as it was), so the old holder's commit is refused
(`fenced`) and its client resumes from the last acknowledged offset. Its release (the commit's
DEL, or `_DELETE_IF_VALUE`) is still propagated, so a lock an AOF rewrite or a full resync
caught never outlives its release."""

_REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0} end
if not ARGV[3] or redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.set_repl(redis.REPL_NONE)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, redis.call('EXISTS', KEYS[2])}
"""
"""A lock's refresh: (held, release requested). With ARGV[3] (the keeper's bulk refresh) the
TTL is only extended once less than that many ms are left: the keeper asks every fraction of a
second (to notice release requests), and thousands of slow uploads' extensions, five a second
each, were Valkey's main work. The extension stays in memory, like the lock it extends (see
`_TRY_LOCK`): it is neither appended to the AOF (no fsync with `appendfsync always`) nor
replicated."""

_DELETE_IF_VALUE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_COMMIT_WRITE = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'fenced'} end
local cur = redis.call('HGET', KEYS[1], 'offset')
if not cur then return {'missing'} end
if cur ~= ARGV[2] then return {'mismatch', cur} end
if ARGV[8] ~= '' then
  local len = redis.call('HGET', KEYS[1], 'length')
  if len ~= '' and len ~= ARGV[8] then return {'length', len} end
  redis.call('HSET', KEYS[1], 'length', ARGV[8])
end
local expires = ARGV[5]
if ARGV[6] ~= '' and redis.call('SCARD', KEYS[4]) > 0 then expires = '' end
redis.call('HSET', KEYS[1], 'offset', ARGV[3], 'updated', ARGV[4], 'expires', expires,
           'completed', ARGV[6])
for i = 10, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[9] == '1' then redis.call('DEL', KEYS[3]) end
if expires == '' and ARGV[5] ~= '' then return {'ok', 'kept'} end
return {'ok'}
"""

# A final upload takes a partial upload as a member: checked and referenced in one step, so that
# the partial's `_DELETE` (which refuses a referenced partial) and this never interleave.
_REFERENCE_PARTIAL = """
local f = redis.call('HMGET', KEYS[1], 'concat', 'offset', 'expires')
if not f[2] then return 'missing' end
if f[3] and f[3] ~= '' and tonumber(f[3]) <= tonumber(ARGV[2]) then return 'missing' end
if f[1] ~= 'partial' then return 'not-partial' end
redis.call('SADD', KEYS[2], ARGV[1])
return 'ok'
"""

# A referenced partial upload that is complete stops expiring: it is part of a file now.
_KEEP_REFERENCED_PARTIAL = """
if redis.call('SCARD', KEYS[2]) == 0 then return 0 end
local f = redis.call('HMGET', KEYS[1], 'length', 'offset')
if not f[1] or f[1] == '' or tonumber(f[1]) ~= tonumber(f[2]) then return 0 end
redis.call('HSET', KEYS[1], 'expires', '')
return 1
"""

# A final upload lets go of a member: 1 if no final references the member any more.
_UNREFERENCE_PARTIAL = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
"""

_COMPLETE_FINAL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local completed = redis.call('HGET', KEYS[1], 'completed')
if completed and completed ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'length', ARGV[1], 'offset', ARGV[1], 'completed', ARGV[2])
return 1
"""

_SET_FIELDS_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# Forget one upload's own keys and leave its tombstone; a partial a final uses is refused.
_DELETE = """
if ARGV[2] == '1' and redis.call('SCARD', KEYS[3]) > 0 then return 'referenced' end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[4], '1', 'EX', ARGV[1]) end
return 'ok'
"""


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn any Redis client failure into the catalogue's 503."""
    try:
        yield
    except REDIS_ERRORS as exc:
        backend_status.failed(backend_status.REDIS, exc)  # logs once per outage
        raise BackendUnavailable("state store (Redis) unavailable; try again later") from exc
    else:
        backend_status.ok(backend_status.REDIS)


class RedisState:
    """Reads and changes upload state: one round trip (per node) for every hot-path call.

    The same code runs on a single server, a Sentinel master and a Cluster: every script touches
    the keys of one upload only (one slot), and the indexes that span uploads (listings, the
    sharded expiry index) are updated by separate commands sent in the same round trip. Those
    indexes are hints that heal: a reader that meets an id without state, or a stale expiry,
    puts the index right (see `expired`).
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "tusserver:",
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ):
        """`wait_replicas` > 0: commits are reported only once that many replicas have them
        (`TUSSERVER_REDIS_WAIT_REPLICAS`, see state/replication.py)."""
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.replicas = ReplicaWait(wait_replicas, wait_timeout_ms)
        self._try_lock = client.register_script(_TRY_LOCK)
        self._refresh_lock = client.register_script(_REFRESH_LOCK)
        self._delete_if_value = client.register_script(_DELETE_IF_VALUE)
        self._commit_write = client.register_script(_COMMIT_WRITE)
        self._reference_partial = client.register_script(_REFERENCE_PARTIAL)
        self._keep_referenced_partial = client.register_script(_KEEP_REFERENCED_PARTIAL)
        self._unreference_partial = client.register_script(_UNREFERENCE_PARTIAL)
        self._set_fields = client.register_script(_SET_FIELDS_IF_EXISTS)
        self._complete_final = client.register_script(_COMPLETE_FINAL)
        self._delete = client.register_script(_DELETE)
        self.catalog = Catalog(client, self.keys)

    def _batch(self) -> Batch:
        return Batch(self.client)

    def _confirmed_batch(self, upload_id: str) -> Batch:
        """A batch that commits to `upload_id`: confirmed by the replicas when WAIT is on."""
        return Batch(self.client).confirm(self.keys.upload(upload_id), self.replicas)

    # -- reads -----------------------------------------------------------------------------
    def ping(self) -> None:
        with translate_errors():
            self.client.ping()

    def get(self, upload_id: str, with_parts: bool = False) -> UploadInfo | None:
        """The upload's state, or None if there is none."""
        with translate_errors():
            if not with_parts:
                return _decode(upload_id, self.client.hgetall(self.keys.upload(upload_id)))
            batch = self._batch()
            batch.command(self.keys.upload(upload_id), "hgetall")
            batch.command(self.keys.parts(upload_id), "zrange", 0, -1)
            fields, members = batch.execute()
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
            batch = self._batch()
            for upload_id in ids:
                batch.command(self.keys.upload(upload_id), "hgetall")
            rows = batch.execute()
            uploads: list[UploadInfo] = []
            for upload_id, row in zip(ids, rows, strict=True):
                info = _decode(upload_id, row)
                if info is None:
                    self.catalog.remove(upload_id)
                    total -= 1
                else:
                    uploads.append(info)
        return Page(uploads, max(total, 0))

    def expired(self, now: float, limit: int = 100) -> list[str]:
        """Ids of uploads whose expiry time has passed, the longest expired first.

        Reads every shard of the expiry index (one round trip per node) and checks each
        candidate's own `expires`: an entry whose upload is gone, or whose expiry moved later
        (writes leave the entry at the earlier time on purpose), is corrected here instead of
        being returned. An entry is never later than its upload's expiry.
        Entries of the unsharded index of earlier versions are moved into the shards.
        """
        shards = [*self.keys.expiry_shards, self.keys.legacy_expiry]
        with translate_errors():
            batch = self._batch()
            for shard in shards:
                batch.command(shard, "zrangebyscore", "-inf", now, 0, limit, withscores=True)
            found = [
                (score, upload_id, shard)
                for shard, rows in zip(shards, batch.execute(), strict=True)
                for upload_id, score in rows
            ]
            candidates = sorted(found)[:limit]
            batch = self._batch()
            for _, upload_id, _ in candidates:
                batch.command(self.keys.upload(upload_id), "hmget", "offset", "expires")
            states = batch.execute()
            repairs = self._batch()
            due = []
            for (_, upload_id, shard), (offset, expires) in zip(candidates, states, strict=True):
                home = self.keys.expiry(upload_id)
                if offset is not None and expires and float(expires) <= now:
                    due.append(upload_id)
                    if shard != home:
                        repairs.command(home, "zadd", {upload_id: float(expires)})
                        repairs.command(shard, "zrem", upload_id)
                    continue
                repairs.command(shard, "zrem", upload_id)
                if offset is not None and expires:
                    repairs.command(home, "zadd", {upload_id: float(expires)})
            repairs.execute()
        return due

    def referencing_finals(self, partial_id: str) -> set[str]:
        """The final uploads built from this partial upload."""
        with translate_errors():
            return set(self.client.smembers(self.keys.refs(partial_id)))

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that have live state."""
        wanted = list(ids)
        with translate_errors():
            batch = self._batch()
            for upload_id in wanted:
                batch.command(self.keys.upload(upload_id), "exists")
            found = batch.execute()
        return {uid for uid, exists in zip(wanted, found, strict=True) if exists}

    # -- creation --------------------------------------------------------------------------
    def create(self, info: UploadInfo) -> None:
        """Record a new upload and index it (one round trip per node).

        The expiry entry is written before the state (a `Batch` runs its node groups in call
        order): an entry without state is dropped by the reaper, while state without an entry
        would never expire. The listings follow the state. An upload created complete from
        bytes already stored (`POST /api/files` on S3) brings its parts index along, in the
        same slot and the same confirmed step as its state.
        """
        with translate_errors():
            batch = self._confirmed_batch(info.id)
            self._queue_expiry(batch, info)
            for part in info.parts:
                batch.command(self.keys.parts(info.id), "zadd", {_part_member(part): part.start})
            batch.command(self.keys.upload(info.id), "hset", mapping=_encode(info))
            batch.execute()
            self.catalog.index(info, fresh=True)

    def _queue_expiry(self, batch: Batch, info: UploadInfo) -> None:
        if info.expires is not None:
            batch.command(self.keys.expiry(info.id), "zadd", {info.id: info.expires})

    def create_final(self, info: UploadInfo, now: float) -> None:
        """Record a final upload, then check and reference each partial upload atomically.

        Each partial is checked and referenced by one script in its own slot, so a partial can
        never be deleted between its check and its reference (`delete` refuses a referenced
        one in the same slot). If one partial does not qualify, the references already made and
        the final's state are taken back before the 400.
        """
        with translate_errors():
            confirmed = self._confirmed_batch(info.id)
            confirmed.command(self.keys.upload(info.id), "hset", mapping=_encode(info))
            confirmed.execute()
            batch = self._batch()
            for member in info.members:
                keys = [self.keys.upload(member), self.keys.refs(member)]
                batch.script(self._reference_partial, keys, [info.id, repr(now)])
            answers = batch.execute()
            refused = next(
                ((member, answer) for member, answer in zip(info.members, answers, strict=True)
                 if answer != "ok"),
                None,
            )  # fmt: skip
            if refused is not None:
                self._take_back_final(info)
                member, answer = refused
                if answer == "not-partial":
                    raise InvalidConcat(f"upload {member} is not a partial upload")
                raise InvalidConcat(f"partial upload {member} does not exist")
            batch = self._batch()
            self._queue_expiry(batch, info)
            batch.execute()
            self.catalog.index(info, fresh=True)
            self._keep_referenced_partials(info.members)

    def _take_back_final(self, info: UploadInfo) -> None:
        batch = self._batch()
        for member in dict.fromkeys(info.members):
            batch.script(self._unreference_partial, [self.keys.refs(member)], [info.id])
        batch.execute()
        self.client.delete(self.keys.upload(info.id))

    def _keep_referenced_partials(self, members: Iterable[str]) -> None:
        """Complete partials a final references stop expiring (state, then the index)."""
        unique = list(dict.fromkeys(members))
        batch = self._batch()
        for member in unique:
            keys = [self.keys.upload(member), self.keys.refs(member)]
            batch.script(self._keep_referenced_partial, keys, [])
        kept = batch.execute()
        batch = self._batch()
        for member, done in zip(unique, kept, strict=True):
            if done:
                batch.command(self.keys.expiry(member), "zrem", member)
        batch.execute()

    def restore(self, info: UploadInfo) -> None:
        """Write an upload's whole state (parts included), replacing what was there.

        A partial upload a final uses does not expire: restoring a final clears its members'
        expiry, and a partial restored after its final keeps none.
        """
        with translate_errors():
            if info.is_partial and self.client.scard(self.keys.refs(info.id)):
                info = info.evolve(expires=None)
            # The upload's own keys share its slot: one transaction, even on a cluster.
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.keys.upload(info.id), self.keys.parts(info.id))
            pipe.hset(self.keys.upload(info.id), mapping=_encode(info))
            for part in info.parts:
                pipe.zadd(self.keys.parts(info.id), {_part_member(part): part.start})
            pipe.execute()
            batch = self._batch()
            self._queue_expiry(batch, info)
            if info.expires is None:
                batch.command(self.keys.expiry(info.id), "zrem", info.id)
            for member in info.members:
                batch.command(self.keys.refs(member), "sadd", info.id)
                batch.command(self.keys.expiry(member), "zrem", member)
                batch.script(self._set_fields, [self.keys.upload(member)], ["expires", ""])
            batch.execute()
            self.catalog.index(info)

    def reindex(self, upload_id: str) -> bool:
        """Put an upload back in the indexes (the catalog's listings, expiry) from its state;
        False if it has none (then it leaves them).

        The indexes are written apart from the state (other slots on a cluster): a crash in
        between leaves an upload out of them, which `rebuild-index` mends with this.
        """
        with translate_errors():
            info = _decode(upload_id, self.client.hgetall(self.keys.upload(upload_id)))
            batch = self._batch()
            if info is None:
                batch.command(self.keys.expiry(upload_id), "zrem", upload_id)
            else:
                self._queue_expiry(batch, info)
            batch.execute()
            if info is None:
                self.catalog.remove(upload_id)
            else:
                self.catalog.index(info)
        return info is not None

    def reindex_all(self) -> int:
        """`reindex` every upload that has state (SCAN over every primary); how many.

        For an upgrade from a version without the catalog, and to repair the indexes after a
        crash, on any store (rebuild-index, by contrast, restores lost state from S3).
        """
        pattern = f"{self.keys.upload('*')}"
        count = 0
        with translate_errors():
            for key in self.client.scan_iter(match=pattern, count=1000):
                upload_id = key[len(self.keys.upload("")) - 1 : -1]
                if key == self.keys.upload(upload_id) and self.reindex(upload_id):
                    count += 1
        return count

    def upgrade_indexes(self) -> int | None:
        """Build the catalog once after an upgrade from a version without it, or with an older
        layout of its indexes; how many uploads were indexed, or None when there was nothing to
        upgrade.

        Without this, an upgraded server would list no file (or miss the new indexes' answers)
        until someone ran `tusserver reindex`. The markers -- the old listing index, the
        catalog's layout mark -- change only after every upload has been indexed, so a start
        interrupted midway upgrades again on the next start.
        """
        with translate_errors():
            legacy = self.client.exists(self.keys.legacy_uploads)
            layout = self.client.get(self.keys.catalog_layout)
            if not legacy and layout == str(Catalog.LAYOUT):
                return None
            if not legacy and not self.client.exists(f"{self.keys.all_uploads}:uploads"):
                self.client.set(self.keys.catalog_layout, Catalog.LAYOUT)  # nothing stored yet
                return None
        count = self.reindex_all()
        with translate_errors():
            self.client.set(self.keys.catalog_layout, Catalog.LAYOUT)
            self.client.delete(self.keys.legacy_uploads)
        return count

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
        `release` deletes the lock in the same step (the hot path's last round trip). The expiry
        index (another slot, maybe another node) is written in the same round trip only when an
        entry must appear or go; a later expiry is found by the reaper (`expired`).
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
            self.keys.lock(info.id),
            self.keys.refs(info.id),
        ]
        shard = self.keys.expiry(info.id)
        with translate_errors():
            batch = self._confirmed_batch(info.id).script(self._commit_write, keys, args)
            # The index entry may stay earlier than the upload's expiry (the reaper, meeting
            # it, re-reads the expiry and re-scores it): a sliding expiry costs the hot path
            # nothing. Only an entry that must appear or go is written, and optionally: the
            # commit stands if only the index update fails.
            if expires is None:
                batch.command(shard, "zrem", info.id, optional=True)
            elif info.expires is None:
                batch.command(shard, "zadd", {info.id: expires}, optional=True)
            result = batch.execute()[0]
            if result[0] == "missing" or (result[0] == "ok" and result[1:]):
                # Gone meanwhile, or a complete partial a final uses: it does not expire.
                self.client.zrem(shard, info.id)
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
        # `info` already carries a length this write declares (write.py), so compare nothing:
        # a declared length always moves the upload in the size indexes.
        if length is not None or self.catalog.needs_touch(info, committed):
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
        with translate_errors():
            done = self._complete_final(
                keys=[self.keys.upload(info.id)], args=[str(length), repr(completed)]
            )
            if not done:
                return None
            batch = self._batch()
            for member in dict.fromkeys(info.members):
                batch.script(self._set_fields, [self.keys.upload(member)], ["expires", ""])
                batch.command(self.keys.expiry(member), "zrem", member)
            batch.execute()
            finished = info.evolve(length=length, offset=length, completed=completed)
            self.catalog.touch(finished)
        return finished

    def delete(self, info: UploadInfo, gone_ttl: int) -> list[str]:
        """Forget the upload everywhere and leave a tombstone for `gone_ttl` seconds.

        A partial upload that a final still references is refused (`Forbidden`), checked in the
        same script that deletes, so a final created meanwhile never loses its member. Then the
        indexes forget it and a final lets go of its members. Returns the members of a final
        upload that no final references any more.
        """
        keys = [
            self.keys.upload(info.id),
            self.keys.parts(info.id),
            self.keys.refs(info.id),
            self.keys.gone(info.id),
        ]
        with translate_errors():
            delete = self._confirmed_batch(info.id)
            (result,) = delete.script(self._delete, keys, [str(max(gone_ttl, 0)), "1"]).execute()
            if result == "referenced":
                raise Forbidden("this partial upload is part of a final upload; terminate that one")
            members = list(dict.fromkeys(info.members))
            self.catalog.remove(info.id, info.owner)
            batch = self._batch()
            batch.command(self.keys.expiry(info.id), "zrem", info.id)
            for member in members:
                batch.script(self._unreference_partial, [self.keys.refs(member)], [info.id])
            answers = batch.execute()
        unused = answers[len(answers) - len(members) :]
        return [member for member, last in zip(members, unused, strict=True) if last]

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
        """`refresh_lock` for many (upload id, token) pairs: one round trip per node.

        A lock is only extended once less than three quarters of its TTL are left (see
        `_REFRESH_LOCK`): the keeper calls this several times a second, mainly to learn about
        release requests.
        """
        if not locks:
            return []
        extend_below = ttl_ms * 3 // 4
        with translate_errors():
            batch = self._batch()
            for upload_id, token in locks:
                keys = [self.keys.lock(upload_id), self.keys.release(upload_id)]
                batch.script(self._refresh_lock, keys, [token, ttl_ms, extend_below])
            answers = batch.execute()
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
