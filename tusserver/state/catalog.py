"""The file catalog: every listing and search index over uploads, kept in Redis.

Each upload is indexed twice, in its owner's scope (`<prefix>owner:{o:<owner>}:...`, one Cluster
slot per owner) and in the fleet-wide scope (`<prefix>{all}:...`, one hot slot that admins
search). A scope holds:

- `:uploads`, `:updated`, `:size` sorted sets (creation time, last change, length; -1 while the
  length is deferred);
- `:name` a lexicographic sorted set of `<lower-case name>\\0<id>` (name order, `q=` scans);
- `:done` / `:open` sets (complete / incomplete uploads);
- `:tag:<tag>` and `:major:<type>` sets (tags; MIME major type such as `image`);
- `:entry` a hash id -> `type\\0tags\\0owner\\0name`: what the upload was indexed under, so a
  change or removal can take it out of exactly the sets it is in.

State comes first, indexes right after (docs/architecture.md, "Redis schema"): per-upload scripts
touch one slot, the catalog's scripts touch one scope's slot. A change is compare-and-set on the
entry (read it, then write only if it is still what was read), so two changes of one upload never
leave it in a stale set. `query` answers a filtered, sorted page and its total in one script.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import redis

from ..models import UploadInfo
from ..tags import tags_of
from .keys import Keys

SortField = Literal["name", "size", "created", "updated"]
SORT_FIELDS: tuple[SortField, ...] = ("name", "size", "created", "updated")

_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_CAS_RETRIES = 8


@dataclass(frozen=True)
class CatalogQuery:
    """What a listing asks for: filters that all must match, one sort order, one page.

    `type` is a lower-case MIME prefix (`image`, `image/` and `image/png` all work); `since` is
    inclusive and `until` exclusive (creation time); sizes are inclusive and match only uploads
    whose length is known. Ties in the sort order are broken by upload id.
    """

    q: str = ""
    tags: tuple[str, ...] = ()
    type: str = ""
    complete: bool | None = None
    min_size: int | None = None
    max_size: int | None = None
    since: float | None = None
    until: float | None = None
    sort: SortField = "created"
    descending: bool = True

    @property
    def is_plain(self) -> bool:
        """No filter at all: a straight page of one sort index."""
        return self == CatalogQuery(sort=self.sort, descending=self.descending)


@dataclass(frozen=True)
class Entry:
    """What one upload is indexed under, in the form the catalog compares and stores."""

    type: str
    tags: tuple[str, ...]
    owner: str
    name: str
    created: float
    updated: float
    size: int
    complete: bool

    def packed(self) -> str:
        return "\0".join((self.type, ",".join(self.tags), self.owner, self.name))


def entry_of(info: UploadInfo) -> Entry:
    """The catalog's view of an upload (lower-case name and type, valid tags only)."""
    return Entry(
        type=index_type(info.filetype),
        tags=tags_of(info.metadata),
        owner=info.owner or "",
        name=index_name(info.filename),
        created=info.created,
        updated=info.updated,
        size=-1 if info.length is None else info.length,
        complete=info.is_complete,
    )


def index_name(filename: str) -> str:
    """The searchable form of a name: case-folded the simple way, control characters as spaces."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in filename.lower())


def index_type(filetype: str) -> str:
    """`type/subtype` in lower case without parameters, or '' when the claim is not a MIME type."""
    base = filetype.split(";", 1)[0].strip().lower()
    return base if _MIME_TYPE.fullmatch(base) else ""


def _unpack(packed: str) -> tuple[str, tuple[str, ...], str, str]:
    kind, tags, owner, name = packed.split("\0", 3)
    return kind, tuple(t for t in tags.split(",") if t), owner, name


# KEYS: 1 uploads 2 updated 3 size 4 name 5 entry 6 done 7 open, then the sets to leave
# (ARGV[9] of them), then the sets to join. ARGV: id, expected entry ('\1' = none), created,
# updated, size, complete, new entry, new name member, count of sets to leave, old name member.
_INDEX = """
local id = ARGV[1]
local old = redis.call('HGET', KEYS[5], id) or '\\1'
if old ~= ARGV[2] then return 0 end
local leave = tonumber(ARGV[9])
if ARGV[10] ~= '' then redis.call('ZREM', KEYS[4], ARGV[10]) end
for i = 8, 7 + leave do redis.call('SREM', KEYS[i], id) end
for i = 8 + leave, #KEYS do redis.call('SADD', KEYS[i], id) end
redis.call('ZADD', KEYS[1], ARGV[3], id)
redis.call('ZADD', KEYS[2], ARGV[4], id)
redis.call('ZADD', KEYS[3], ARGV[5], id)
redis.call('ZADD', KEYS[4], 0, ARGV[8])
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[6], id); redis.call('SREM', KEYS[7], id)
else
  redis.call('SADD', KEYS[7], id); redis.call('SREM', KEYS[6], id)
end
redis.call('HSET', KEYS[5], id, ARGV[7])
return 1
"""

# Same KEYS as _INDEX up to 7, then the sets to leave. ARGV: id, expected entry, name member.
_REMOVE = """
local id = ARGV[1]
local old = redis.call('HGET', KEYS[5], id)
if not old then return 1 end
if old ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], id); redis.call('ZREM', KEYS[2], id); redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('SREM', KEYS[6], id); redis.call('SREM', KEYS[7], id)
for i = 8, #KEYS do redis.call('SREM', KEYS[i], id) end
redis.call('HDEL', KEYS[5], id)
return 1
"""

# Progress: KEYS 1 updated 2 size 3 entry 4 done 5 open; ARGV id, updated, size, complete.
_TOUCH = """
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[4], ARGV[1]); redis.call('SREM', KEYS[5], ARGV[1])
else
  redis.call('SADD', KEYS[5], ARGV[1]); redis.call('SREM', KEYS[4], ARGV[1])
end
return 1
"""

# One filtered, sorted page and the total, over one scope.
# KEYS: 1 sort index (a score index, or the name index) 2 entry 3 name 4 uploads(created)
#       5 size, then sets that must all contain the id (tags, major type, done/open).
# ARGV: 1 'score'|'name' 2 desc '1'|'0' 3 offset 4 limit 5 q (lower case) 6 ZSCAN pattern for q
#       7 type prefix checked on the entry ('' = none) 8 size min 9 size max 10 since 11 until
#       (range bounds in ZRANGEBYSCORE syntax; '' = unbounded side; both '' = no range).
_QUERY = """
local by_name = ARGV[1] == 'name'
local desc = ARGV[2] == '1'
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local q, pattern, tprefix = ARGV[5], ARGV[6], ARGV[7]
local WALK_DENSITY, SCAN_ABOVE, CHUNK = 50, 4000, 1000
local all = redis.call('ZCARD', KEYS[4])

local function bound(text, default)
  if text == '' then return default, false end
  if string.sub(text, 1, 1) == '(' then return tonumber(string.sub(text, 2)), true end
  return tonumber(text), false
end
local producers = {}
for i = 6, #KEYS do
  producers[#producers + 1] = {kind = 'set', key = KEYS[i], n = redis.call('SCARD', KEYS[i])}
end
local function add_range(key, lo, hi)
  if lo == '' and hi == '' then return end
  local rlo, rhi = lo == '' and '-inf' or lo, hi == '' and '+inf' or hi
  local p = {kind = 'range', key = key, lo = rlo, hi = rhi, n = redis.call('ZCOUNT', key, rlo, rhi)}
  p.min, p.min_open = bound(lo, -math.huge)
  p.max, p.max_open = bound(hi, math.huge)
  producers[#producers + 1] = p
end
add_range(KEYS[5], ARGV[8], ARGV[9])
add_range(KEYS[4], ARGV[10], ARGV[11])

local function member_id(member)
  if by_name then return string.sub(member, string.find(member, '\\0', 1, true) + 1) end
  return member
end

-- no filter at all: a straight page of the sort index
if #producers == 0 and q == '' and tprefix == '' then
  local cmd = desc and 'ZREVRANGE' or 'ZRANGE'
  local page = redis.call(cmd, KEYS[1], offset, offset + limit - 1)
  for i = 1, #page do page[i] = member_id(page[i]) end
  return {all, page}
end

-- the base: the smallest producer, or the ids whose names match q (C-side glob scan)
table.sort(producers, function(a, b) return a.n < b.n end)
local base, base_is_q = nil, false
if q ~= '' and (#producers == 0 or producers[1].n > SCAN_ABOVE) then
  base, base_is_q = {}, true
  local cursor = '0'
  repeat
    local r = redis.call('ZSCAN', KEYS[3], cursor, 'MATCH', pattern, 'COUNT', 20000)
    cursor = r[1]
    local items = r[2]
    for i = 1, #items, 2 do
      local m = items[i]
      base[#base + 1] = string.sub(m, string.find(m, '\\0', 1, true) + 1)
    end
  until cursor == '0'
elseif #producers > 0 then
  local p = table.remove(producers, 1)
  if p.kind == 'set' then base = redis.call('SMEMBERS', p.key)
  else base = redis.call('ZRANGEBYSCORE', p.key, p.lo, p.hi) end
else
  base = redis.call('ZRANGE', KEYS[4], 0, -1)
end

local need_entry = (q ~= '' and not base_is_q) or tprefix ~= ''
local matched, is_match = {}, {}
for _, id in ipairs(base) do
  local ok = true
  for _, p in ipairs(producers) do
    if p.kind == 'set' then
      if redis.call('SISMEMBER', p.key, id) == 0 then ok = false; break end
    else
      local s = tonumber(redis.call('ZSCORE', p.key, id) or 'nan')
      if s == nil or s ~= s or s < p.min or s > p.max or (p.min_open and s == p.min)
         or (p.max_open and s == p.max) then ok = false; break end
    end
  end
  if ok and need_entry then
    local e = redis.call('HGET', KEYS[2], id)
    if not e then ok = false else
      local t1 = string.find(e, '\\0', 1, true)
      if tprefix ~= '' and string.sub(e, 1, #tprefix) ~= tprefix then ok = false end
      if ok and q ~= '' and not base_is_q then
        local t2 = string.find(e, '\\0', t1 + 1, true)
        local t3 = string.find(e, '\\0', t2 + 1, true)
        if not string.find(string.sub(e, t3 + 1), q, 1, true) then ok = false end
      end
    end
  end
  if ok and not is_match[id] then matched[#matched + 1] = id; is_match[id] = true end
end
local total = #matched
local page = {}
if total == 0 or offset >= total then return {total, page} end

if total * WALK_DENSITY >= all then
  -- dense: walk the sort index in order, keeping the matches, until the page is full
  local cmd = desc and 'ZREVRANGE' or 'ZRANGE'
  local seen, start = 0, 0
  while #page < limit do
    local chunk = redis.call(cmd, KEYS[1], start, start + CHUNK - 1)
    if #chunk == 0 then break end
    for _, m in ipairs(chunk) do
      local id = member_id(m)
      if is_match[id] then
        seen = seen + 1
        if seen > offset then
          page[#page + 1] = id
          if #page >= limit then break end
        end
      end
    end
    start = start + CHUNK
  end
  return {total, page}
end

-- sparse: fetch each match's sort key and sort here
local key = {}
for _, id in ipairs(matched) do
  if by_name then
    local e = redis.call('HGET', KEYS[2], id) or ''
    local t1 = string.find(e, '\\0', 1, true) or 0
    local t2 = string.find(e, '\\0', t1 + 1, true) or t1
    local t3 = string.find(e, '\\0', t2 + 1, true) or t2
    key[id] = string.sub(e, t3 + 1)
  else
    key[id] = tonumber(redis.call('ZSCORE', KEYS[1], id) or '-inf')
  end
end
table.sort(matched, function(a, b)
  if desc then a, b = b, a end
  local ka, kb = key[a], key[b]
  if ka == kb then return a < b end
  return ka < kb
end)
for i = offset + 1, math.min(offset + limit, total) do page[#page + 1] = matched[i] end
return {total, page}
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class Catalog:
    """Maintains and queries the listing indexes; every call is one round trip per scope."""

    def __init__(self, client: redis.Redis, keys: Keys):
        self.client = client
        self.keys = keys
        self._index = client.register_script(_INDEX)
        self._remove = client.register_script(_REMOVE)
        self._touch = client.register_script(_TOUCH)
        self._query = client.register_script(_QUERY)

    # -- key names ---------------------------------------------------------------------------
    def scopes(self, owner: str | None) -> list[str]:
        """The scopes an upload of `owner` is indexed in: its owner's, then the fleet's."""
        scopes = [self.keys.owner(owner)] if owner else []
        return [*scopes, self.keys.all_uploads]

    @staticmethod
    def _fixed(scope: str) -> list[str]:
        return [f"{scope}:{name}" for name in ("uploads", "updated", "size", "name", "entry")] + [
            f"{scope}:done",
            f"{scope}:open",
        ]

    @staticmethod
    def _sets(scope: str, packed: str) -> list[str]:
        """The per-value sets an entry belongs to (its tags, its MIME major type)."""
        kind, tags, _, _ = _unpack(packed)
        sets = [f"{scope}:tag:{tag}" for tag in tags]
        if kind:
            sets.append(f"{scope}:major:{kind.split('/', 1)[0]}")
        return sets

    # -- maintenance -------------------------------------------------------------------------
    def index(self, info: UploadInfo) -> None:
        """Put (or move) an upload in every index; partial uploads are not listed."""
        if info.is_partial:
            self.remove(info.id, info.owner)
            return
        entry = entry_of(info)
        packed = entry.packed()
        member = f"{entry.name}\0{info.id}"
        for scope in self.scopes(info.owner):
            for _ in range(_CAS_RETRIES):
                old = self.client.hget(f"{scope}:entry", info.id)
                leave = self._sets(scope, old) if old is not None else []
                join = self._sets(scope, packed)
                old_member = f"{_unpack(old)[3]}\0{info.id}" if old is not None else ""
                args = [
                    info.id,
                    "\1" if old is None else old,
                    repr(entry.created),
                    repr(entry.updated),
                    str(entry.size),
                    "1" if entry.complete else "0",
                    packed,
                    member,
                    str(len(leave)),
                    old_member,
                ]
                if self._index(keys=[*self._fixed(scope), *leave, *join], args=args):
                    break

    def index_new(self, infos: Iterable[UploadInfo]) -> None:
        """Index many uploads not indexed yet, pipelined (bulk loads: benchmarks, tests)."""
        pipe = self.client.pipeline(transaction=False)
        queued: list[UploadInfo] = []
        for info in infos:
            if info.is_partial:
                continue
            queued.append(info)
            entry = entry_of(info)
            packed = entry.packed()
            for scope in self.scopes(info.owner):
                args = [
                    info.id,
                    "\1",
                    repr(entry.created),
                    repr(entry.updated),
                    str(entry.size),
                    "1" if entry.complete else "0",
                    packed,
                    f"{entry.name}\0{info.id}",
                    "0",
                    "",
                ]
                keys = [*self._fixed(scope), *self._sets(scope, packed)]
                self._index(keys=keys, args=args, client=pipe)
        answers = iter(pipe.execute())
        for info in queued:
            if not all([next(answers) for _ in self.scopes(info.owner)]):
                self.index(info)  # it was indexed already: move it the careful way

    def touch(self, info: UploadInfo) -> None:
        """Record progress (last change, length, completion) of an upload already indexed."""
        if info.is_partial:
            return
        size = -1 if info.length is None else info.length
        complete = "1" if info.is_complete else "0"
        pipe = self.client.pipeline(transaction=False)
        for scope in self.scopes(info.owner):
            keys = [f"{scope}:{n}" for n in ("updated", "size", "entry", "done", "open")]
            self._touch(keys=keys, args=[info.id, repr(info.updated), size, complete], client=pipe)
        pipe.execute()

    def remove(self, upload_id: str, owner: str | None = None) -> None:
        """Take an upload out of every index (its owner is read from the fleet entry if unknown)."""
        if owner is None:
            packed = self.client.hget(f"{self.keys.all_uploads}:entry", upload_id)
            owner = _unpack(packed)[2] or None if packed is not None else None
        for scope in self.scopes(owner):
            for _ in range(_CAS_RETRIES):
                old = self.client.hget(f"{scope}:entry", upload_id)
                if old is None:
                    break
                keys = [*self._fixed(scope), *self._sets(scope, old)]
                member = f"{_unpack(old)[3]}\0{upload_id}"
                if self._remove(keys=keys, args=[upload_id, old, member]):
                    break

    # -- queries -----------------------------------------------------------------------------
    def query(
        self, query: CatalogQuery, limit: int, offset: int = 0, owner: str | None = None
    ) -> tuple[list[str], int]:
        """A page of ids matching `query` in `owner`'s scope (the fleet's without); the total."""
        scope = self.keys.owner(owner) if owner else self.keys.all_uploads
        sort_key = {"created": "uploads"}.get(query.sort, query.sort)
        keys = [f"{scope}:{sort_key}", f"{scope}:entry", f"{scope}:name"]
        keys += [f"{scope}:uploads", f"{scope}:size"]
        keys += [f"{scope}:tag:{tag}" for tag in dict.fromkeys(query.tags)]
        prefix = query.type
        if prefix:
            major, _, rest = prefix.partition("/")
            keys.append(f"{scope}:major:{major}")
            prefix = prefix if rest else ""
        if query.complete is not None:
            keys.append(f"{scope}:{'done' if query.complete else 'open'}")
        sizes = _size_range(query.min_size, query.max_size)
        args: list[Any] = [
            "name" if query.sort == "name" else "score",
            "1" if query.descending else "0",
            offset,
            limit,
            query.q,
            f"*{_glob_escape(query.q)}*\0*" if query.q else "",
            prefix,
            *sizes,
            "" if query.since is None else repr(float(query.since)),
            "" if query.until is None else f"({float(query.until)!r}",
        ]
        total, ids = self._query(keys=keys, args=args)
        return list(ids), int(total)

    def entries(self, owner: str | None = None) -> Iterable[str]:
        """Every id indexed in a scope (for checks and rebuilds)."""
        scope = self.keys.owner(owner) if owner else self.keys.all_uploads
        return self.client.zrange(f"{scope}:uploads", 0, -1)


def _size_range(low: int | None, high: int | None) -> tuple[str, str]:
    """Size bounds; any bound leaves out uploads of unknown length (indexed as -1)."""
    if low is None and high is None:
        return "", ""
    return str(max(low or 0, 0)), "" if high is None else str(high)
