"""The tus protocol through Flask's test client, against real Redis and each data store.

Every test that uses `store_kind` runs on the local store and on S3 (with the session's single
Redis), and the protocol files below run a third time, `[cluster]`: the local store on a real
3-primary Valkey Cluster. S3 is not repeated on the cluster (the data store does not care where
the state lives), which keeps the suite's added time small. `TUSTEST_CLUSTER_ALL=1` runs every
file of tests/http on the cluster as well (about four more minutes).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.app_fixtures import (  # noqa: F401 - fixtures, found by pytest here
    S3_PART_SIZE,
    app,
    client,
    make_app,
    make_settings,
)

ON_CLUSTER_TOO = {
    "test_post.py",
    "test_patch.py",
    "test_head.py",
    "test_delete.py",
    "test_concat.py",
    "test_download.py",
    "test_expiration.py",
    "test_api.py",
    "test_accounts_api.py",
}
"""The protocol files that also run on a Redis Cluster."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `store_kind`: local, s3, and for the files above, cluster."""
    if "store_kind" not in metafunc.fixturenames or hasattr(metafunc.module, "store_kind"):
        return  # not a store test, or a module with its own `store_kind`
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "store_kind" in (names.split(",") if isinstance(names, str) else names):
            return  # the test chose its stores itself
    kinds = ["local", "s3"]
    everywhere = os.environ.get("TUSTEST_CLUSTER_ALL", "") not in ("", "0")
    if everywhere or Path(str(metafunc.definition.path)).name in ON_CLUSTER_TOO:
        kinds.append("cluster")
    metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """`local`, `s3`, or `cluster` (the local store, with state on a Redis Cluster)."""
    return str(getattr(request, "param", "local"))


@pytest.fixture
def redis_mode(store_kind: str) -> str:
    return "cluster" if store_kind == "cluster" else "single"
