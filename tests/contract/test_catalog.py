"""The catalog's filtered, sorted pages against a brute-force reference over 10,000 uploads.

The uploads are written once per module straight into the indexes (no HTTP), then hypothesis
draws filter combinations, sort orders and pages; every answer must equal the reference: the
same ids in the same order (ties broken by id) and the same total.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tusserver.models import UploadInfo, new_upload_id
from tusserver.state.catalog import SORT_FIELDS, Catalog, CatalogQuery, entry_of
from tusserver.state.connect import connect
from tusserver.state.keys import Keys
from tusserver.state.redis import RedisState

UPLOADS = 10_000
OWNERS = ("ann", "bob", "cy", "dee", "eve")
TAGS = ("red", "green", "blue", "a.b", "x-1", "y_2", "big", "tiny", "draft", "final", "q3", "z")
TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "text/plain",
    "text/csv",
    "application/json",
    "application/pdf",
    "Video/MP4; codecs=x",
    "",
    "not a type",
)
WORDS = (
    "report",
    "Photo",
    "IMG",
    "notes",
    "Ünïcode",
    "data",
    "backup",
    "a*b",
    "[x]",
    "final",
    "phone",
    "hotel",
    "motor",
)  # the last three hold every trigram of "photo", apart
EXTS = (".png", ".JPG", ".txt", ".csv", "", ".tar.gz")


def random_upload(rng: random.Random) -> UploadInfo:
    name = "_".join(rng.sample(WORDS, rng.randint(1, 3))) + rng.choice(EXTS)
    length = None if rng.random() < 0.05 else rng.choice([0, rng.randint(0, 5_000_000)])
    offset = 0 if length is None else rng.choice([0, length, rng.randint(0, length)])
    created = float(rng.randint(1_700_000_000, 1_700_000_000 + 5_000)) + rng.choice([0, 0.25])
    metadata = {"filename": name, "filetype": rng.choice(TYPES)}
    tags = rng.sample(TAGS, rng.choice([0, 0, 1, 2, 3, 5]))
    if tags:
        metadata["tags"] = ",".join(tags)
    return UploadInfo(
        id=new_upload_id(),
        length=length,
        offset=offset,
        metadata=metadata,
        created=created,
        updated=created + rng.randint(0, 100),
        owner=rng.choice(OWNERS) if rng.random() > 0.02 else None,
    )


@pytest.fixture(scope="module")
def loaded(redis_url: str) -> Iterator[tuple[Catalog, list[Entry]]]:
    """10,000 random uploads, indexed in bulk once for the whole module."""
    prefix = f"tustest:{uuid.uuid4().hex[:12]}:"
    client = connect(redis_url)
    catalog = Catalog(client, Keys(prefix))
    uploads = [random_upload(random.Random(seed)) for seed in range(UPLOADS)]
    catalog.index_new(uploads)
    try:
        yield catalog, [reference_entry(info) for info in uploads]
    finally:
        _delete_prefix(client, prefix)
        client.close()


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def reference(uploads: list[Entry], query: CatalogQuery, owner: str | None) -> list[str]:
    """The ids matching `query`, in its order: the plain-Python definition of every filter."""

    def matches(entry: Entry) -> bool:
        if owner is not None and entry.owner != owner:
            return False
        if query.q and query.q not in entry.name:
            return False
        if not set(query.tags) <= set(entry.tags):
            return False
        if query.type:
            major, _, sub = query.type.partition("/")
            if entry.type.partition("/")[0] != major or (sub and entry.type != query.type):
                return False
        if query.complete is not None and entry.complete != query.complete:
            return False
        sized = query.min_size is not None or query.max_size is not None
        if sized and entry.size < max(query.min_size or 0, 0):
            return False
        if query.max_size is not None and entry.size > query.max_size:
            return False
        if query.since is not None and entry.created < query.since:
            return False
        return not (query.until is not None and entry.created >= query.until)

    def key(entry: Entry) -> tuple[object, str]:
        value = {
            "name": entry.name.encode(),
            "size": entry.size,
            "created": entry.created,
            "updated": entry.updated,
        }[query.sort]
        return value, entry.id

    found = sorted((e for e in uploads if matches(e)), key=key, reverse=query.descending)
    return [entry.id for entry in found]


@dataclass(frozen=True)
class Entry:
    """An upload as the reference sees it: the catalog's lower-case name and type, its id."""

    id: str
    owner: str
    name: str
    type: str
    tags: tuple[str, ...]
    size: int
    created: float
    updated: float
    complete: bool


def reference_entry(info: UploadInfo) -> Entry:
    e = entry_of(info)
    return Entry(info.id, e.owner, e.name, e.type, e.tags, e.size, e.created, e.updated, e.complete)


SHORT_Q = ["o", "ph", "e", "*", "ü", "_p", "g.", "zz"]  # each is its own gram set (fleet scope)
queries = st.builds(
    CatalogQuery,
    q=st.sampled_from(
        ["", "", "", "photo", "img_", "ünï", "a*b", "[x]", ".tar", "zzz", "rep", *SHORT_Q]
    ),
    tags=st.lists(st.sampled_from(TAGS), max_size=2).map(tuple),
    type=st.sampled_from(
        ["", "", "image", "image/", "image/png", "text/", "application/json", "vid"]
    ),
    complete=st.sampled_from([None, None, True, False]),
    min_size=st.sampled_from([None, None, 0, 1000, 2_500_000]),
    max_size=st.sampled_from([None, None, 0, 100_000, 4_000_000]),
    since=st.sampled_from([None, None, 1_700_001_000.0, 1_700_002_500.25]),
    until=st.sampled_from([None, None, 1_700_002_500.25, 1_700_004_000.0]),
    sort=st.sampled_from(SORT_FIELDS),
    descending=st.booleans(),
)
owners = st.sampled_from([None, None, *OWNERS])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=queries,
    owner=owners,
    limit=st.integers(1, 60),
    offset=st.integers(0, 300),
    sparse=st.sampled_from([Catalog.sparse, 20]),  # 20: the dense strategies (bitmaps) too
)
def test_a_page_is_the_reference_page(
    loaded: tuple[Catalog, list[Entry]],
    query: CatalogQuery,
    owner: str | None,
    limit: int,
    offset: int,
    sparse: int,
) -> None:
    catalog, uploads = loaded
    expected = reference(uploads, query, owner)
    catalog.sparse = sparse
    try:
        ids, total = catalog.query(query, limit, offset, owner)
    finally:
        del catalog.sparse
    assert total == len(expected)
    assert ids == expected[offset : offset + limit]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=queries, owner=owners, limit=st.integers(20, 200))
def test_pages_put_together_are_the_whole_reference(
    loaded: tuple[Catalog, list[Entry]], query: CatalogQuery, owner: str | None, limit: int
) -> None:
    catalog, uploads = loaded
    expected = reference(uploads, query, owner)[:600]
    collected: list[str] = []
    offset = 0
    while offset < len(expected):
        ids, total = catalog.query(query, limit, offset, owner)
        assert total >= len(expected)
        assert ids
        collected += ids
        offset += limit
    assert collected[: len(expected)] == expected


@pytest.mark.parametrize(
    "query",
    [
        CatalogQuery(q="photo"),  # a name search over every name (trigrams, checked)
        CatalogQuery(q="photo", sort="name", descending=False),
        CatalogQuery(q="rep", complete=True, sort="size"),  # one trigram is the answer
        CatalogQuery(q="ph", sort="updated"),  # shorter than a trigram: its bigram set
        CatalogQuery(q="e", tags=("red",), sort="name"),  # a dense unigram with a tag
        CatalogQuery(q="o", complete=True, min_size=1000, sort="name", descending=False),
        CatalogQuery(complete=True, min_size=1000, sort="name"),  # sizes of complete ones
        CatalogQuery(complete=False, max_size=4_000_000, sort="size"),  # ... of incomplete ones
        CatalogQuery(type="image", complete=True, min_size=1000),  # sets and a split range
        CatalogQuery(complete=False, max_size=0, sort="size"),  # the range at the far end:
        CatalogQuery(until=1_700_001_000.0),  # the walk starts at the range (ties at its bound)
        CatalogQuery(since=1_700_004_000.0, tags=("red",), sort="created", descending=False),
        CatalogQuery(tags=("red",), type="image", sort="size"),  # sparse result of large sets
        CatalogQuery(tags=("red",), type="image", sort="name", descending=False),
        CatalogQuery(since=1_700_001_000.0, until=1_700_001_010.0),  # a narrow range
        CatalogQuery(type="image", min_size=1000),  # a large set and size range: the buckets
        CatalogQuery(tags=("red",), min_size=1000, max_size=4_000_000, sort="size"),
        CatalogQuery(type="image", max_size=1023, sort="name"),  # whole buckets only
        CatalogQuery(tags=("red",), min_size=1000, max_size=1020),  # a slice of one bucket
        CatalogQuery(type="image", complete=False, min_size=1000),  # the open twin as mask
    ],
)
@pytest.mark.parametrize("offset", [0, 37, 5000])
@pytest.mark.parametrize(
    ("sparse", "walk"), [(Catalog.sparse, Catalog.walk), (100, 10**9), (20, 0)]
)  # the defaults; then walking the sort index always, or never (sorting what matched)
def test_each_strategy_gives_the_reference_page(
    loaded: tuple[Catalog, list[Entry]], query: CatalogQuery, offset: int, sparse: int, walk: int
) -> None:
    catalog, uploads = loaded
    expected = reference(uploads, query, None)
    catalog.sparse, catalog.walk = sparse, walk
    try:
        ids, total = catalog.query(query, 50, offset, None)
    finally:
        del catalog.sparse, catalog.walk
    assert (ids, total) == (expected[offset : offset + 50], len(expected))
    assert not catalog.client.keys(f"{catalog.keys.prefix}*:tmp:*")  # no scratch key is left


def test_a_walk_that_starts_at_a_range_keeps_the_ties_at_its_bounds(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Sorted by the field a range filters, the walk starts at the range: uploads whose size or
    creation time equals a bound are in (or, for `until`, out of) the page all the same."""
    catalog = Catalog(redis_client, Keys(redis_prefix))
    catalog.sparse, catalog.walk = 5, 10**9  # walk the sort index even for these few
    rng = random.Random(7)
    uploads = []
    for _ in range(60):
        size = rng.choice([999, 1000, 1000, 1001, 5000])
        created = 1_700_000_000.0 + rng.choice([10, 20, 20, 30])
        info = random_upload(rng).evolve(length=size, offset=size, created=created, updated=created)
        uploads.append(info)
    catalog.index_new(uploads)
    entries = [reference_entry(info) for info in uploads]
    for query in (
        CatalogQuery(min_size=1000, sort="size", descending=False),
        CatalogQuery(complete=True, max_size=1000, sort="size"),
        CatalogQuery(since=1_700_000_020.0, sort="created", descending=False),
        CatalogQuery(until=1_700_000_020.0, sort="created"),
        CatalogQuery(since=1_700_000_020.0, until=1_700_000_030.0, sort="created"),
    ):
        expected = reference(entries, query, None)
        assert catalog.query(query, 50, 0, None) == (expected[:50], len(expected)), query


def test_every_strategy_on_this_topology(redis_client: redis.Redis, redis_prefix: str) -> None:
    """A single server and a Cluster answer alike: every script keeps to one scope's slot."""
    catalog = Catalog(redis_client, Keys(redis_prefix))
    catalog.sparse = 20  # reach the dense strategies with few uploads
    uploads = [random_upload(random.Random(seed)) for seed in range(400)]
    catalog.index_new(uploads)
    entries = [reference_entry(info) for info in uploads]
    queries = [
        CatalogQuery(),
        CatalogQuery(q="photo", sort="name", descending=False),
        CatalogQuery(q="ph", complete=True),
        CatalogQuery(tags=("red",), type="image", sort="size"),
        CatalogQuery(complete=False, min_size=1000, sort="updated"),
        CatalogQuery(since=1_700_001_000.0, until=1_700_004_000.0, max_size=4_000_000),
    ]
    for owner in (None, "ann"):
        for query in queries:
            expected = reference(entries, query, owner)
            assert catalog.query(query, 30, 5, owner) == (expected[5:35], len(expected))
    assert not list(redis_client.scan_iter(match=f"{redis_prefix}*:tmp:*"))


def test_reindex_all_rebuilds_lost_indexes(redis_client: redis.Redis, redis_prefix: str) -> None:
    """After an upgrade (state without a catalog) `tusserver reindex` lists everything again."""
    state = RedisState(redis_client, redis_prefix)
    uploads = [random_upload(random.Random(seed)).evolve(owner="ann") for seed in range(30)]
    for info in uploads:
        state.create(info)
    catalog_keys = [
        key
        for key in redis_client.scan_iter(match=f"{redis_prefix}*", count=1000)
        if "owner:{" in key or "{all}" in key
    ]
    for key in catalog_keys:
        redis_client.delete(key)
    assert state.list(10).total == 0
    assert state.reindex_all() == 30
    newest = sorted(uploads, key=lambda u: (u.created, u.id), reverse=True)
    assert [u.id for u in state.list(50, owner="ann").uploads] == [u.id for u in newest]
    assert state.list(1, query=CatalogQuery(tags=("red",))).total == sum(
        "red" in entry_of(u).tags for u in uploads
    )
