"""The file catalog: every listing and search index over uploads, kept in Redis.

Each upload is indexed twice, in its owner's scope (`<prefix>owner:{o:<owner>}:...`, one Cluster
slot per owner) and in the fleet-wide scope (`<prefix>{all}:...`, one hot slot that admins
search). A scope holds:

- `:uploads`, `:updated`, `:size` sorted sets (creation time, last change, length; -1 while the
  length is deferred); `:size:done` / `:size:open` the lengths of complete / incomplete ones;
- `:name` a lexicographic sorted set of `<lower-case name>\\0<id>` (name order, `q=` scans);
- `:done` / `:open` sets (complete / incomplete uploads);
- `:tag:<tag>`, `:major:<type>`, `:type:<type/sub>` sets (tags; MIME major and full type);
- fleet scope only: `:gram:<g>` sets of ids per 1-, 2- and 3-character piece of the name, and
  for counting large intersections a slot number per upload (`:slot`), bitmap twins of the
  large sets (`:bits:<set suffix>`) and a bitmap per size bucket (`:bits:sizes:<b>`, b the
  length's bit length), so a size range over large sets is counted without copying it;
- `:entry` a hash id -> `name\\0type\\0tags\\0owner`: what the upload was indexed under, so a
  change or removal can take it out of exactly the sets it is in.

State comes first, indexes right after (docs/architecture.md, "Redis schema"): per-upload scripts
touch one slot, the catalog's scripts touch one scope's slot. A change is compare-and-set on the
entry (read it, then write only if it is still what was read), so two changes of one upload never
leave it in a stale set. `query` answers a filtered, sorted page and its total in one script.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..models import UploadInfo
from ..tags import tags_of
from .batch import Batch
from .keys import Keys

SortField = Literal["name", "size", "created", "updated"]
SORT_FIELDS: tuple[SortField, ...] = ("name", "size", "created", "updated")

_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_CAS_RETRIES = 8
TOUCH_EVERY = 30.0
"""Seconds a running upload's place in the `updated` order may lag: a PATCH moves it only
this long after the last move (or when it completes), so the hot path rarely pays for it."""
GRAM = 3
"""The longest n-gram indexed: every 1-, 2- and 3-character piece of a name has a fleet-wide set,
so a `q=` of up to three characters is one set (an exact count, no name read) and a longer one
is the intersection of its trigrams, checked on the names."""


@dataclass(frozen=True)
class CatalogQuery:
    """What a listing asks for: filters that all must match, one sort order, one page.

    `type` is a lower-case MIME type (`image/png`) or major type (`image` or `image/`); `since` is
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
        """`name\0type\0tags\0owner`: the name first, so a query reads it with one search."""
        return "\0".join((self.name, self.type, ",".join(self.tags), self.owner))


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
    name, kind, tags, owner = packed.split("\0", 3)
    return kind, tuple(t for t in tags.split(",") if t), owner, name


# Shared by the maintenance scripts. KEYS 1 uploads 2 updated 3 size 4 name 5 entry 6 done
# 7 open 8 size:done 9 size:open 10 slot 11 slot:free 12 slot:next 13 bits:done 14 bits:open
# 15 the size bucket bitmap of the upload's length (fleet scope, length known; else unused).
# ARGV[11]: the scope's bitmap prefix ('' = no bitmaps: an owner's scope). In the fleet scope
# each upload has a slot number (reused after removal) and some sets a bitmap twin, a key
# under the prefix (no set's key starts with it), whose bit at the slot mirrors membership.
_PUT = """
local id, prefix = ARGV[1], ARGV[11]
local function slot_of(allocate)
  if prefix == '' then return nil end
  local slot = redis.call('HGET', KEYS[10], id)
  if not slot and allocate then
    slot = redis.call('SPOP', KEYS[11]) or (redis.call('INCR', KEYS[12]) - 1)
    redis.call('HSET', KEYS[10], id, slot)
  end
  return slot and tonumber(slot)
end
-- A twin is made only once its set is large (ARGV[12] ids, and 1/128 of the slots): below
-- that the set itself is cheap to intersect, and a bitmap of a rare set (a rare tag or
-- 2-gram) would cost up to slots/8 bytes for a handful of ids. Once made, it is kept.
local function make_twin(set, twin)
  local slots = tonumber(redis.call('GET', KEYS[12]) or '0')
  if redis.call('SCARD', set) < math.max(tonumber(ARGV[12]), slots / 128) then return end
  local members = redis.call('SMEMBERS', set)
  for s = 1, #members, 500 do
    local found = redis.call('HMGET', KEYS[10], unpack(members, s, math.min(s + 499, #members)))
    for _, at in ipairs(found) do
      if at then redis.call('SETBIT', twin, tonumber(at), 1) end
    end
  end
end
-- the upload's bit in the bitmap of its length's size bucket (`size` < 0: none)
local function put_size(slot, size, on)
  if slot and size >= 0 then redis.call('SETBIT', KEYS[15], slot, on and 1 or 0) end
end
-- `set`: for a twin, the set it mirrors (already changed)
local function put(key, on, slot, set)
  if prefix ~= '' and string.sub(key, 1, #prefix) == prefix then
    if not slot then return end
    if redis.call('EXISTS', key) == 1 then redis.call('SETBIT', key, slot, on and 1 or 0)
    elseif on then make_twin(set, key) end
  elseif on then redis.call('SADD', key, id)
  else redis.call('SREM', key, id) end
end
-- the upload's completion: the done/open sets (and their twins) and the size split by it
local function put_done(slot, done, size)
  put(KEYS[6], done); put(KEYS[7], not done)
  if slot then put(KEYS[13], done, slot, KEYS[6]); put(KEYS[14], not done, slot, KEYS[7]) end
  if done then
    redis.call('ZADD', KEYS[8], size, id); redis.call('ZREM', KEYS[9], id)
  else
    redis.call('ZADD', KEYS[9], size, id); redis.call('ZREM', KEYS[8], id)
  end
end
"""

# KEYS: as _PUT, then the sets to leave (ARGV[9] of them), then the sets to join (each with its
# bitmap twin, if any). ARGV: id, expected entry ('\1' = none), created, updated, size,
# complete, new entry, new name member, count of sets to leave, old name member, bitmap prefix.
_INDEX = (
    _PUT
    + """
local old = redis.call('HGET', KEYS[5], id) or '\\1'
if old ~= ARGV[2] then return 0 end
local leave = tonumber(ARGV[9])
local slot = slot_of(true)
if ARGV[10] ~= '' then redis.call('ZREM', KEYS[4], ARGV[10]) end
for i = 16, 15 + leave do put(KEYS[i], false, slot, KEYS[i - 1]) end
for i = 16 + leave, #KEYS do put(KEYS[i], true, slot, KEYS[i - 1]) end
-- a length, once known, never changes (tus): the bucket is new, or the one it is in already
put_size(slot, tonumber(ARGV[5]), true)
redis.call('ZADD', KEYS[1], ARGV[3], id)
redis.call('ZADD', KEYS[2], ARGV[4], id)
redis.call('ZADD', KEYS[3], ARGV[5], id)
redis.call('ZADD', KEYS[4], 0, ARGV[8])
put_done(slot, ARGV[6] == '1', ARGV[5])
redis.call('HSET', KEYS[5], id, ARGV[7])
return 1
"""
)

# KEYS as _PUT (15: the bucket of the expected length), then the sets to leave. ARGV: id,
# expected entry, name member, expected length (its score in `:size`); ARGV[11] as _PUT.
_REMOVE = (
    _PUT
    + """
local old = redis.call('HGET', KEYS[5], id)
if not old then return 1 end
if old ~= ARGV[2] then return 0 end
local size = tonumber(redis.call('ZSCORE', KEYS[3], id) or '-1')
if size ~= tonumber(ARGV[4]) then return 0 end
local slot = slot_of(false)
put_size(slot, size, false)
redis.call('ZREM', KEYS[1], id); redis.call('ZREM', KEYS[2], id); redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('ZREM', KEYS[8], id); redis.call('ZREM', KEYS[9], id)
put(KEYS[6], false); put(KEYS[7], false)
if slot then put(KEYS[13], false, slot); put(KEYS[14], false, slot) end
for i = 16, #KEYS do put(KEYS[i], false, slot, KEYS[i - 1]) end
if slot then
  redis.call('HDEL', KEYS[10], id); redis.call('SADD', KEYS[11], slot)
end
redis.call('HDEL', KEYS[5], id)
return 1
"""
)

# Progress: KEYS as _PUT; ARGV id, updated, size, complete, ARGV[11] as _PUT.
_TOUCH = (
    _PUT
    + """
if redis.call('HEXISTS', KEYS[5], id) == 0 then return 0 end
local slot = slot_of(false)
redis.call('ZADD', KEYS[2], ARGV[2], id)
redis.call('ZADD', KEYS[3], ARGV[3], id)
put_size(slot, tonumber(ARGV[3]), true)
put_done(slot, ARGV[4] == '1', ARGV[3])
return 1
"""
)

# One filtered, sorted page and the total, over one scope, in one script.
# KEYS: 1 sort index (a score index, or the name index) 2 entry 3 name 4 uploads (created)
#       5 size, 6-9 scratch keys (deleted before returning), then sets that must all contain
#       the id (tags, name grams, MIME major type, full type, done/open).
# ARGV: 1 'score'|'name' 2 desc '1'|'0' 3 offset 4 limit 5 q to check on names ('' = none)
#       6 ZSCAN pattern for q when no gram set stands for it ('' = none) 7-8 size range
#       9-10 creation range (ZRANGEBYSCORE syntax; '' = unbounded side, both '' = none)
#       11 SPARSE 12 DENSITY 13 WALK (the strategy's thresholds, see Catalog)
#       14 how many of the last KEYS are trigrams of a q that is checked on the names
#       15 the range the sort index is scored by: 'size', 'created' or ''
#       16 how many of the last KEYS are bitmaps: the twins of the filter sets, in their order,
#          given when every filter set has one (then their intersection is counted by BITOP).
#       17 how many KEYS after the twins are size bucket bitmaps (those wholly in the size range)
#       18 how many KEYS after those are masks ANDed with them (the done/open twin of complete=)
#       19 '1' when the size range may be counted by buckets (the only range; twins given)
#       20-23 the size slices of the buckets the range cuts (lo, hi; '' = none)
# Strategy: the smallest filter decides. A small one (<= SPARSE ids) is read and the others
# checked in batches; large ones are counted in C (ZINTERCARD) and the page found by walking
# the sort index, or intersected in C (ZINTERSTORE) when the result is too sparse to walk.
_QUERY = """
local by_name = ARGV[1] == 'name'
local desc = ARGV[2] == '1'
local offset, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local q, pattern = ARGV[5], ARGV[6]
local SPARSE, DENSITY, CHUNK = tonumber(ARGV[11]), tonumber(ARGV[12]), 500
local WALK = tonumber(ARGV[13])
local SORT, ENTRY, NAMES, CREATED, SIZES = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local TMP_Q, TMP_SIZE, TMP_CREATED, TMP_RESULT = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local all = redis.call('ZCARD', CREATED)
local NUL = string.char(0)

local function after_nul(text, count)
  local at = 0
  for _ = 1, count do at = string.find(text, NUL, at + 1, true) end
  return string.sub(text, at + 1)
end
local function sort_ids(members)
  if by_name then for i = 1, #members do members[i] = after_nul(members[i], 1) end end
  return members
end
local function cleanup() redis.call('DEL', TMP_Q, TMP_SIZE, TMP_CREATED, TMP_RESULT) end
-- names of ids, from the entries, in batches
local function names_of(ids)
  local names = {}
  for s = 1, #ids, CHUNK do
    local e = math.min(s + CHUNK - 1, #ids)
    local got = redis.call('HMGET', ENTRY, unpack(ids, s, e))
    for i = 1, #got do
      local entry = got[i]
      names[s + i - 1] = entry and string.sub(entry, 1, string.find(entry, NUL, 1, true) - 1)
                       or false
    end
  end
  return names
end

-- producers: sets (tags, name grams, type, done/open) and score ranges (size, created)
local producers = {}
local BITMAPS, BUCKETS, MASKS = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
local last_set = #KEYS - BITMAPS - BUCKETS - MASKS
local first_bucket = last_set + BITMAPS + 1
local first_gram = last_set - tonumber(ARGV[14]) + 1
for i = 10, first_gram - 1 do
  producers[#producers + 1] = {set = true, key = KEYS[i], n = redis.call('SCARD', KEYS[i])}
end
-- a checked q: its two rarest trigrams find the candidates (the names are checked anyway;
-- more gram sets would mostly repeat the same ids at the cost of a lookup each)
local gram_sets = {}
for i = first_gram, last_set do
  gram_sets[#gram_sets + 1] = {set = true, key = KEYS[i], n = redis.call('SCARD', KEYS[i])}
end
table.sort(gram_sets, function(a, b) return a.n < b.n end)
for i = 1, math.min(2, #gram_sets) do producers[#producers + 1] = gram_sets[i] end
local function bound(text, default)
  if text == '' then return default, false end
  if string.sub(text, 1, 1) == '(' then return tonumber(string.sub(text, 2)), true end
  return tonumber(text), false
end
local sorted_range = nil
local function add_range(field, key, tmp, lo, hi)
  if lo == '' and hi == '' then return end
  local rlo, rhi = lo == '' and '-inf' or lo, hi == '' and '+inf' or hi
  local p = {set = false, key = key, tmp = tmp, lo = rlo, hi = rhi,
             n = redis.call('ZCOUNT', key, rlo, rhi)}
  p.min, p.min_open = bound(lo, -math.huge)
  p.max, p.max_open = bound(hi, math.huge)
  producers[#producers + 1] = p
  if field == ARGV[15] then sorted_range = p end
end
add_range('size', SIZES, TMP_SIZE, ARGV[7], ARGV[8])
add_range('created', CREATED, TMP_CREATED, ARGV[9], ARGV[10])
-- Where a walk of the sort index starts: when the sort index is scored by a filtered range,
-- at that range (what comes before it in the sort order cannot match), so a range at the far
-- end of the order (sort=-size&max_size=...) is not reached by passing every other id first.
local function walk_start()
  local p = sorted_range
  if not p then return 0 end
  local function before(text)  -- the bound that leaves out exactly what text lets in
    if string.sub(text, 1, 1) == '(' then return string.sub(text, 2) end
    return '(' .. text
  end
  if desc then
    if p.hi == '+inf' then return 0 end
    return redis.call('ZCOUNT', SORT, before(p.hi), '+inf')
  end
  if p.lo == '-inf' then return 0 end
  return redis.call('ZCOUNT', SORT, '-inf', before(p.lo))
end

if #producers == 0 and q == '' then
  local page = redis.call(desc and 'ZREVRANGE' or 'ZRANGE', SORT, offset, offset + limit - 1)
  return {all, sort_ids(page)}
end

-- which of `ids` pass producer p (batched: one call per chunk)
local function passing(p, ids, s, e)
  if p.set then return redis.call('SMISMEMBER', p.key, unpack(ids, s, e)) end
  local scores = redis.call('ZMSCORE', p.key, unpack(ids, s, e))
  local ok = {}
  if p.zmember then
    for i = 1, #scores do ok[i] = scores[i] and 1 or 0 end
    return ok
  end
  for i = 1, #scores do
    local v = scores[i] and tonumber(scores[i])
    ok[i] = (v and v >= p.min and v <= p.max and not (p.min_open and v == p.min)
             and not (p.max_open and v == p.max)) and 1 or 0
  end
  return ok
end
-- ids (in order) that pass every producer in `checks` and, if `verify`, contain q
local function filter(ids, checks, verify)
  local keep = {}
  local qlen = #q
  for s = 1, #ids, CHUNK do
    local e = math.min(s + CHUNK - 1, #ids)
    local alive = {}
    for i = s, e do alive[i - s + 1] = true end
    for _, p in ipairs(checks) do
      local ok = passing(p, ids, s, e)
      for i = 1, #ok do if ok[i] == 0 then alive[i] = false end end
    end
    -- q is checked on the entry itself (the name comes first, up to the first NUL)
    local entries = verify and redis.call('HMGET', ENTRY, unpack(ids, s, e)) or nil
    for i = s, e do
      local j = i - s + 1
      local ok = alive[j]
      if ok and verify then
        local entry = entries[j]
        local at = entry and string.find(entry, q, 1, true)
        ok = at and at + qlen <= string.find(entry, NUL, 1, true)
      end
      if ok then keep[#keep + 1] = ids[i] end
    end
  end
  return keep
end
-- the page of `matched` (a complete list of the matches, any order) in sort order: found by
-- walking the sort index when that is expected to pass at most WALK ids per match (a table
-- lookup each), else by sorting the matches (a score read each, n log n comparisons in Lua)
local function page_of(matched)
  local total = #matched
  local page = {}
  if offset >= total then return {total, page} end
  if (offset + limit) * all <= total * total * WALK then
    local is_match = {}
    for _, id in ipairs(matched) do is_match[id] = true end
    local seen, start = 0, walk_start()
    while #page < limit do
      local chunk = sort_ids(redis.call(desc and 'ZREVRANGE' or 'ZRANGE', SORT, start,
                                        start + CHUNK - 1))
      if #chunk == 0 then break end
      for _, id in ipairs(chunk) do
        if is_match[id] then
          seen = seen + 1
          if seen > offset and #page < limit then page[#page + 1] = id end
        end
      end
      start = start + CHUNK
    end
    return {total, page}
  end
  local key = {}
  if by_name then
    local names = names_of(matched)
    for i, id in ipairs(matched) do key[id] = names[i] or '' end
  else
    for s = 1, #matched, CHUNK do
      local e = math.min(s + CHUNK - 1, #matched)
      local scores = redis.call('ZMSCORE', SORT, unpack(matched, s, e))
      for i = 1, #scores do key[matched[s + i - 1]] = tonumber(scores[i] or '-inf') end
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
end

table.sort(producers, function(a, b) return a.n < b.n end)
-- q without a gram index (an owner's scope, or fewer than three characters): scan the names
if pattern ~= '' and (#producers == 0 or producers[1].n > SPARSE) then
  local found, cursor = {}, '0'
  repeat
    local r = redis.call('ZSCAN', NAMES, cursor, 'MATCH', pattern, 'COUNT', 5000)
    cursor = r[1]
    for i = 1, #r[2], 2 do found[#found + 1] = after_nul(r[2][i], 1) end
  until cursor == '0'
  if #producers == 0 or #found <= SPARSE then
    return page_of(filter(found, producers, false))
  end
  for s = 1, #found, CHUNK do
    redis.call('SADD', TMP_Q, unpack(found, s, math.min(s + CHUNK - 1, #found)))
  end
  table.insert(producers, 1, {set = true, key = TMP_Q, n = #found})
  q = ''
end
local verify = q ~= ''

-- sparse: the smallest producer's members, checked one batch at a time
local first = producers[1]
if first.n <= SPARSE then
  local base
  if first.set then base = redis.call('SMEMBERS', first.key)
  else base = redis.call('ZRANGEBYSCORE', first.key, first.lo, first.hi) end
  local rest = {unpack(producers, 2)}
  local result = page_of(filter(base, rest, verify))
  cleanup()
  return result
end

-- dense: every filter is large
-- The requested page of the intersection of `inputs` in the sort order: the sort index joins
-- the intersection with weight 1, the filters with 0, so each id keeps its sort score.
local function sorted_page(inputs, count)
  local args = {TMP_RESULT, #inputs + 1, SORT}
  for _, key in ipairs(inputs) do args[#args + 1] = key end
  args[#args + 1] = 'WEIGHTS'
  args[#args + 1] = 1
  for _ = 1, #inputs do args[#args + 1] = 0 end
  redis.call('ZINTERSTORE', unpack(args))
  return {count, redis.call(desc and 'ZREVRANGE' or 'ZRANGE', TMP_RESULT, offset,
                            offset + limit - 1)}
end

local function walk(total, checks)
  local page, seen, start = {}, 0, walk_start()
  while #page < limit and seen < total do
    local chunk = sort_ids(redis.call(desc and 'ZREVRANGE' or 'ZRANGE', SORT, start,
                                      start + CHUNK - 1))
    if #chunk == 0 then break end
    for _, id in ipairs(filter(chunk, checks, false)) do
      seen = seen + 1
      if seen > offset and #page < limit then page[#page + 1] = id end
    end
    start = start + CHUNK
  end
  return {total, page}
end
if #producers == 1 and not verify then
  -- one filter: its size is the total, and the page is found by walking the sort index
  return walk(first.n, producers)
end
local sets, ranges = {}, {}
for _, p in ipairs(producers) do
  if p.set then sets[#sets + 1] = p.key else ranges[#ranges + 1] = p end
end
if #sets == 0 then
  -- only score ranges: intersect copies of them in C for the count
  local inputs = {}
  for _, p in ipairs(ranges) do
    redis.call('ZRANGESTORE', p.tmp, p.key, p.lo, p.hi, 'BYSCORE')
    inputs[#inputs + 1] = p.tmp
  end
  local result = walk(redis.call('ZINTERCARD', #inputs, unpack(inputs)), producers)
  cleanup()
  return result
end
-- How many ids are in every set: their bitmap twins ANDed and counted (a few KB each, however
-- many ids), else SINTERCARD (a lookup per id of the smallest set), stopping past `limit`.
local twins = BITMAPS > 0
for i = last_set + 1, last_set + BITMAPS do
  twins = twins and redis.call('EXISTS', KEYS[i]) == 1
end
local masked = twins
for i = first_bucket + BUCKETS, #KEYS do
  masked = masked and redis.call('EXISTS', KEYS[i]) == 1
end
local function count_sets(cap)
  if twins then
    redis.call('BITOP', 'AND', TMP_RESULT, unpack(KEYS, last_set + 1, last_set + BITMAPS))
    local count = redis.call('BITCOUNT', TMP_RESULT)
    redis.call('DEL', TMP_RESULT)
    return count
  end
  local args = {#sets}
  for _, key in ipairs(sets) do args[#args + 1] = key end
  if cap then
    args[#args + 1] = 'LIMIT'
    args[#args + 1] = cap
  end
  return redis.call('SINTERCARD', unpack(args))
end
-- sets only: counted in C; a dense result is paged by walking, a thin one intersected in C
if #ranges == 0 and not verify then
  local count = count_sets(nil)
  local result
  if count * DENSITY >= all or offset >= count then
    result = walk(count, producers)
    cleanup()
    return result
  end
  if by_name then
    result = page_of(redis.call('SINTER', unpack(sets)))
  else
    result = sorted_page(sets, count)
  end
  cleanup()
  return result
end
-- sets and score ranges, all large. When the sets' intersection is small, it is read and the
-- ranges checked on it; else the ranges are copied to scratch keys and everything is counted
-- (and, when thin, intersected) in C, a dense result paged by walking the sort index.
local few = verify
if not few then few = count_sets(SPARSE * 4 + 1) <= SPARSE * 4 end
-- The size range counted without copying it: the bitmaps of the size buckets wholly inside it
-- ORed, ANDed with the sets' twins (and done/open for complete=), plus the ids of the (at most
-- two) slices of the buckets it cuts that are in every set. A dense result is then walked.
if not few and masked and ARGV[19] == '1' then
  local count = 0
  if BUCKETS > 0 then
    redis.call('BITOP', 'OR', TMP_SIZE, unpack(KEYS, first_bucket, first_bucket + BUCKETS - 1))
    local args = {'AND', TMP_SIZE, TMP_SIZE}
    for i = last_set + 1, last_set + BITMAPS do args[#args + 1] = KEYS[i] end
    for i = first_bucket + BUCKETS, #KEYS do args[#args + 1] = KEYS[i] end
    redis.call('BITOP', unpack(args))
    count = redis.call('BITCOUNT', TMP_SIZE)
    redis.call('DEL', TMP_SIZE)
  end
  local set_checks = {}
  for _, p in ipairs(producers) do if p.set then set_checks[#set_checks + 1] = p end end
  for i = 20, 22, 2 do
    if ARGV[i] ~= '' then
      count = count + #filter(redis.call('ZRANGEBYSCORE', SIZES, ARGV[i], ARGV[i + 1]),
                              set_checks, false)
    end
  end
  if count * DENSITY >= all or offset >= count then
    local result = walk(count, producers)
    cleanup()
    return result
  end
end
if not few then
  local inputs = {}
  for _, key in ipairs(sets) do inputs[#inputs + 1] = key end
  for _, p in ipairs(ranges) do
    redis.call('ZRANGESTORE', p.tmp, p.key, p.lo, p.hi, 'BYSCORE')
    inputs[#inputs + 1] = p.tmp
  end
  local count = redis.call('ZINTERCARD', #inputs, unpack(inputs))
  local result
  if count * DENSITY >= all or offset >= count then
    result = walk(count, producers)
  elseif by_name then
    redis.call('ZINTERSTORE', TMP_RESULT, #inputs, unpack(inputs))
    result = page_of(redis.call('ZRANGE', TMP_RESULT, 0, -1))
  else
    result = sorted_page(inputs, count)
  end
  cleanup()
  return result
end
-- the sets intersected in C; score ranges (and q) checked on what is left
local result = page_of(filter(redis.call('SINTER', unpack(sets)), ranges, verify))
cleanup()
return result
"""


def grams(text: str, size: int = GRAM) -> list[str]:
    """The distinct `size`-character pieces of a (lower-case) name, in order of first appearance."""
    return list(dict.fromkeys(text[i : i + size] for i in range(len(text) - size + 1)))


def all_grams(text: str) -> list[str]:
    """Every distinct piece of one to `GRAM` characters: the gram sets a name belongs to."""
    return [gram for size in range(1, GRAM + 1) for gram in grams(text, size)]


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class Catalog:
    """Maintains and queries the listing indexes; every call is one round trip per scope.

    `sparse`: a filter matching at most this many uploads is read and the others checked id by
    id; larger ones are counted in C. `density`: a result of at least 1/density of the scope is
    paged by walking the sort index, a thinner one is sorted after intersecting. `walk`: matches
    already in hand (checked names, read small filters) are paged by walking the sort index when
    that is expected to pass at most this many ids per match, else sorted (measured: a walked id
    costs about 1/15 of a sorted one). `twin_min`: a fleet set gets its bitmap twin once it holds
    this many ids (and 1/128 of the slots); tests lower it to 1. Tuned with
    bench/search.py; tests lower them to reach every strategy with fewer uploads.
    """

    sparse = 1500
    density = 40
    walk = 15
    twin_min = 64
    LAYOUT = 3
    """The indexes' layout: 2 added the 1- and 2-gram sets, the sizes split by completion and
    the fleet scope's slots and bitmaps; 3 the size buckets' bitmaps.
    Bumped with every change of what is indexed, so `upgrade_indexes` rebuilds once on serve."""

    def __init__(self, client: Any, keys: Keys):
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
    def _fixed(scope: str, size: int) -> list[str]:
        """The keys every maintenance script gets; the last, the bitmap of `size`'s bucket."""
        names = ("uploads", "updated", "size", "name", "entry", "done", "open", "size:done")
        names += ("size:open", "slot", "slot:free", "slot:next", "bits:done", "bits:open")
        bucket = "none" if size < 0 else str(size_bucket(size))
        return [f"{scope}:{name}" for name in names] + [f"{scope}:bits:sizes:{bucket}"]

    def _bits_prefix(self, scope: str) -> str:
        """Where the scope's bitmaps live: the fleet scope's only (an owner's sets are small)."""
        return f"{scope}:bits:" if scope == self.keys.all_uploads else ""

    def _bitmap(self, scope: str, set_key: str) -> str | None:
        """The bitmap twin of a fleet set that dense queries count (BITOP AND + BITCOUNT):
        done/open, tags, types and the 1-/2-grams; trigram sets are many and thin, so none."""
        prefix = self._bits_prefix(scope)
        suffix = set_key[len(scope) + 1 :]
        if not prefix or (suffix.startswith("gram:") and len(suffix) > len("gram:") + 2):
            return None
        return prefix + suffix

    def _sets(self, scope: str, packed: str) -> list[str]:
        """The per-value sets an entry belongs to: its tags, MIME major and full type, and in
        the fleet scope the 1- to 3-grams of its name (what `q=` over 100,000 names reads);
        each followed by its bitmap twin, if it has one."""
        kind, tags, _, name = _unpack(packed)
        sets = [f"{scope}:tag:{tag}" for tag in tags]
        if kind:
            sets += [f"{scope}:major:{kind.split('/', 1)[0]}", f"{scope}:type:{kind}"]
        if scope == self.keys.all_uploads:
            sets += [f"{scope}:gram:{gram}" for gram in all_grams(name)]
        twins = ((key, self._bitmap(scope, key)) for key in sets)
        return [key for pair in twins for key in pair if key is not None]

    # -- maintenance -------------------------------------------------------------------------
    def index(self, info: UploadInfo, fresh: bool = False) -> None:
        """Put (or move) an upload in every index; partial uploads are not listed.

        Both scopes are read, then written, in one round trip each (per node). `fresh` (a new
        upload: no entry can exist) skips the read; were one there after all, the
        compare-and-set fails and the entry is read and moved the careful way.
        """
        if info.is_partial:
            self.remove(info.id, info.owner)
            return
        entry = entry_of(info)
        packed = entry.packed()
        pending = self.scopes(info.owner)
        olds: list[str | None] = [None] * len(pending)
        for attempt in range(_CAS_RETRIES):
            if attempt or not fresh:
                reads = Batch(self.client)
                for scope in pending:
                    reads.command(f"{scope}:entry", "hget", info.id)
                olds = reads.execute()
            writes = Batch(self.client)
            for scope, old in zip(pending, olds, strict=True):
                leave = self._sets(scope, old) if old is not None else []
                args = [
                    info.id,
                    "\1" if old is None else old,
                    repr(entry.created),
                    repr(entry.updated),
                    str(entry.size),
                    "1" if entry.complete else "0",
                    packed,
                    f"{entry.name}\0{info.id}",
                    str(len(leave)),
                    f"{_unpack(old)[3]}\0{info.id}" if old is not None else "",
                    self._bits_prefix(scope),
                    self.twin_min,
                ]
                keys = [*self._fixed(scope, entry.size), *leave, *self._sets(scope, packed)]
                writes.script(self._index, keys, args)
            done = writes.execute()
            pending = [scope for scope, ok in zip(pending, done, strict=True) if not ok]
            if not pending:
                return

    def index_new(self, infos: Iterable[UploadInfo]) -> None:
        """Index many uploads not indexed yet, one round trip per node (bulk loads)."""
        batch = Batch(self.client)
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
                    self._bits_prefix(scope),
                    self.twin_min,
                ]
                keys = [*self._fixed(scope, entry.size), *self._sets(scope, packed)]
                batch.script(self._index, keys, args)
        answers = iter(batch.execute())
        for info in queued:
            if not all([next(answers) for _ in self.scopes(info.owner)]):
                self.index(info)  # it was indexed already: move it the careful way

    @staticmethod
    def needs_touch(before: UploadInfo, after: UploadInfo) -> bool:
        """Whether a write changed what the catalog shows: completion or length at once, the
        last-change time at most `TOUCH_EVERY` seconds late (PATCHes in between skip it)."""
        if after.is_partial:
            return False
        if after.is_complete != before.is_complete or after.length != before.length:
            return True
        return after.updated - before.updated >= TOUCH_EVERY

    def touch(self, info: UploadInfo) -> None:
        """Record progress (last change, length, completion) of an upload already indexed."""
        if info.is_partial:
            return
        size = -1 if info.length is None else info.length
        complete = "1" if info.is_complete else "0"
        batch = Batch(self.client)
        for scope in self.scopes(info.owner):
            args = [info.id, repr(info.updated), size, complete, *[""] * 6]
            args += [self._bits_prefix(scope), self.twin_min]
            batch.script(self._touch, self._fixed(scope, size), args)
        batch.execute()

    def remove(self, upload_id: str, owner: str | None = None) -> None:
        """Take an upload out of every index (its owner is read from the fleet entry if unknown)."""
        if owner is None:
            packed = self.client.hget(f"{self.keys.all_uploads}:entry", upload_id)
            owner = _unpack(packed)[2] or None if packed is not None else None
        for scope in self.scopes(owner):
            for _ in range(_CAS_RETRIES):
                reads = Batch(self.client)
                reads.command(f"{scope}:entry", "hget", upload_id)
                reads.command(f"{scope}:size", "zscore", upload_id)
                old, score = reads.execute()
                if old is None:
                    break
                size = -1 if score is None else int(score)
                keys = [*self._fixed(scope, size), *self._sets(scope, old)]
                member = f"{_unpack(old)[3]}\0{upload_id}"
                args = [upload_id, old, member, size, *[""] * 6, self._bits_prefix(scope), 0]
                if self._remove(keys=keys, args=args):
                    break

    # -- queries -----------------------------------------------------------------------------
    def query(
        self, query: CatalogQuery, limit: int, offset: int = 0, owner: str | None = None
    ) -> tuple[list[str], int]:
        """A page of ids matching `query` in `owner`'s scope (the fleet's without); the total."""
        scope = self.keys.owner(owner) if owner else self.keys.all_uploads
        sort_key = {"created": "uploads"}.get(query.sort, query.sort)
        keys = [f"{scope}:{sort_key}", f"{scope}:entry", f"{scope}:name", f"{scope}:uploads"]
        sized = query.min_size is not None or query.max_size is not None
        if sized and query.complete is not None:
            # sizes of complete (or incomplete) uploads only: the range is the whole filter,
            # counted with ZCOUNT instead of intersecting a copy of it with done/open
            keys.append(f"{scope}:size:{'done' if query.complete else 'open'}")
        else:
            keys.append(f"{scope}:size")
        scratch = secrets.token_hex(8)
        keys += [f"{scope}:tmp:{scratch}:{n}" for n in ("q", "size", "created", "result")]
        keys += [f"{scope}:tag:{tag}" for tag in dict.fromkeys(query.tags)]
        if query.type:
            major, _, sub = query.type.partition("/")
            keys.append(f"{scope}:type:{query.type}" if sub else f"{scope}:major:{major}")
        if query.complete is not None and not sized:
            keys.append(f"{scope}:{'done' if query.complete else 'open'}")
        q, pattern, checked_grams = query.q, "", 0
        if q and scope == self.keys.all_uploads:
            keys += [f"{scope}:gram:{gram}" for gram in grams(q, min(len(q), GRAM))]
            if len(q) <= GRAM:
                q = ""  # one gram is the answer itself
            else:
                checked_grams = len(grams(q))
        elif q:
            pattern = f"*{_glob_escape(q)}*\0*"
        twins = [self._bitmap(scope, key) for key in keys[9 : len(keys) - checked_grams]]
        bitmaps = [] if checked_grams else [twin for twin in twins if twin is not None]
        if len(bitmaps) < len(twins):
            bitmaps = []  # a filter without a twin: SINTERCARD counts them all
        keys += bitmaps
        buckets, masks, slices = [], [], []
        by_buckets = bool(bitmaps) and sized and query.since is None and query.until is None
        if by_buckets:
            whole, slices = size_buckets(max(query.min_size or 0, 0), query.max_size)
            buckets = [f"{scope}:bits:sizes:{bucket}" for bucket in whole]
            if query.complete is not None:
                masks = [f"{scope}:bits:{'done' if query.complete else 'open'}"]
        keys += buckets + masks
        cuts = [str(bound) for cut in slices for bound in cut]
        args: list[Any] = [
            "name" if query.sort == "name" else "score",
            "1" if query.descending else "0",
            offset,
            limit,
            q,
            pattern,
            *_size_range(query.min_size, query.max_size),
            "" if query.since is None else repr(float(query.since)),
            "" if query.until is None else f"({float(query.until)!r}",
            self.sparse,
            self.density,
            self.walk,
            checked_grams,
            query.sort if query.sort in ("size", "created") else "",
            len(bitmaps),
            len(buckets),
            len(masks),
            "1" if by_buckets else "0",
            *cuts,
            *[""] * (4 - len(cuts)),
        ]
        total, ids = self._query(keys=keys, args=args)
        return list(ids), int(total)

    def entries(self, owner: str | None = None) -> Iterable[str]:
        """Every id indexed in a scope (for checks and rebuilds)."""
        scope = self.keys.owner(owner) if owner else self.keys.all_uploads
        return self.client.zrange(f"{scope}:uploads", 0, -1)


def size_bucket(size: int) -> int:
    """The size bucket of a known length: 0 for empty, else its bit length (bucket b >= 1 holds
    the lengths 2**(b-1) .. 2**b - 1), so 64 buckets cover every length."""
    return size.bit_length()


def size_buckets(low: int, high: int | None) -> tuple[list[int], list[tuple[int, int]]]:
    """A size range as the buckets wholly inside it and the (at most two) slices of the buckets
    it cuts: the range's ids are those buckets' bitmaps ORed plus the ids in the slices."""
    whole: list[int] = []
    slices: list[tuple[int, int]] = []
    top = _BUCKETS - 1 if high is None else min(size_bucket(high), _BUCKETS - 1)
    for bucket in range(size_bucket(low), top + 1):
        start, end = (0, 0) if bucket == 0 else (1 << (bucket - 1), (1 << bucket) - 1)
        cut_start, cut_end = max(start, low), end if high is None else min(end, high)
        if cut_start > cut_end:
            continue
        if (cut_start, cut_end) == (start, end):
            whole.append(bucket)
        else:
            slices.append((cut_start, cut_end))
    return whole, slices


_BUCKETS = 65
"""Lengths are below 2**64 (64-bit offsets): buckets 0..64."""


def _size_range(low: int | None, high: int | None) -> tuple[str, str]:
    """Size bounds; any bound leaves out uploads of unknown length (indexed as -1)."""
    if low is None and high is None:
        return "", ""
    return str(max(low or 0, 0)), "" if high is None else str(high)
