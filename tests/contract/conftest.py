"""Fixtures for the data-store contract: the same tests run against every store.

`store` is parametrized over the local store (a tmp_path, fsync on) and the S3 store (the
session's moto server from tests/conftest.py, a fresh bucket per test, removed afterwards).
`stored_keys` and `stored_bytes` look behind a store's back, so tests can prove what is (not)
left in it. The state and lock contracts run on a single Redis and on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.s3 import (
    SpyClient,
    drop_bucket,
    make_s3_settings,
    object_sizes,
    unique_bucket,
)
from tests.support.store import chunked, commit, new_info
from tusserver.models import UploadInfo
from tusserver.storage.base import DataStore
from tusserver.storage.local import LocalStore
from tusserver.storage.s3 import S3Store

ON_CLUSTER_TOO = {"test_state.py", "test_locks.py", "test_catalog.py"}
"""Contract files whose Redis tests also run on a 3-primary Valkey Cluster (`[cluster]`)."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the state and lock contracts on a single Redis and on a Redis Cluster."""
    in_scope = Path(str(metafunc.definition.path)).name in ON_CLUSTER_TOO
    if in_scope and "redis_mode" in metafunc.fixturenames:
        metafunc.parametrize("redis_mode", ["single", "cluster"], indirect=True)


S3_PART_SIZE = 64 * 1024
"""Small parts keep the S3 tests fast while still crossing many part boundaries."""
S3_READ_BLOCK = 16 * 1024
"""Reads stream several blocks per part, so a reader stopped mid-part has a read-ahead of the
next part in flight (which must be released too)."""


@pytest.fixture
def make_s3_store(moto_endpoint: str) -> Iterator[Callable[..., S3Store]]:
    """A factory of S3 stores, each on a fresh bucket that is dropped after the test."""
    created: list[S3Store] = []

    def make(**overrides: object) -> S3Store:
        overrides.setdefault("s3_part_size", S3_PART_SIZE)
        overrides.setdefault("read_chunk_size", S3_READ_BLOCK)
        settings = make_s3_settings(moto_endpoint, unique_bucket(), **overrides)
        store = S3Store(settings)
        store.ensure_bucket()
        created.append(store)
        return store

    yield make
    for store in created:
        drop_bucket(store)


@pytest.fixture
def s3_store(make_s3_store: Callable[..., S3Store]) -> S3Store:
    return make_s3_store()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "uploads", fsync=True)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> DataStore:
    """Every data store, one at a time."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def stored_keys() -> Callable[[DataStore, UploadInfo], dict[str, int]]:
    """What a store physically holds for an upload: {name: size} (file or objects)."""

    def look(store: DataStore, info: UploadInfo) -> dict[str, int]:
        if isinstance(store, S3Store):
            return object_sizes(store, store.upload_prefix(info.id))
        path = store.local_path(info)
        assert path is not None
        return {path.name: path.stat().st_size} if path.exists() else {}

    return look


@pytest.fixture
def stored_bytes(
    stored_keys: Callable[[DataStore, UploadInfo], dict[str, int]],
) -> Callable[[DataStore, UploadInfo], int]:
    """How many bytes of upload data a store holds, committed or not (info.json excluded)."""

    def count(store: DataStore, info: UploadInfo) -> int:
        return sum(
            size for name, size in stored_keys(store, info).items() if not name.endswith(".json")
        )

    return count


@pytest.fixture
def three_parts(
    make_s3_store: Callable[..., S3Store],
) -> tuple[S3Store, UploadInfo, bytes, SpyClient]:
    """Three full parts, read in 16 KiB blocks (so a part takes several blocks), with a spy on
    the store's S3 client."""
    s3_store = make_s3_store(read_chunk_size=16 * 1024)
    data = bytes(range(256)) * (3 * S3_PART_SIZE // 256)
    info = new_info(s3_store, len(data))
    info = commit(info, s3_store.write(info, chunked(data, 50_000)))
    spy = SpyClient(s3_store.client)
    s3_store.client = spy  # type: ignore[assignment]
    return s3_store, info, data, spy
