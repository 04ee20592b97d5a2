"""Fixtures for tests that drive the app through Flask's test client on real Redis and each data
store: `store_kind` (local, s3), `make_settings`, `make_app`, `app`, `client`.

The HTTP suite and the fault suite both use them: their conftests import them from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from tusserver import create_app
from tusserver.settings import Settings

S3_PART_SIZE = 64 * 1024


@pytest.fixture(params=["local", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_settings(
    request: pytest.FixtureRequest,
    store_kind: str,
    data_dir: Path,
    active_redis_url: str,
    redis_mode: str,
    redis_prefix: str,
) -> Any:
    """Settings for this test's store; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": data_dir,
            "redis_url": active_redis_url,
            "redis_mode": redis_mode,
            "redis_prefix": redis_prefix,
            # The protocol tests test the protocol: one implicit admin, as before accounts.
            # Tests of access control ask for auth="required" explicitly.
            "auth": "none",
        }
        if store_kind == "s3":
            from tests.support.s3 import make_s3_settings, unique_bucket

            endpoint = request.getfixturevalue("moto_endpoint")
            base.update(s3_part_size=S3_PART_SIZE)
            base.update(overrides)
            return make_s3_settings(endpoint, unique_bucket("http"), **base)
        base.update(overrides)
        return Settings(**base)

    return make


@pytest.fixture
def make_app(make_settings: Any, redis_client: redis.Redis) -> Iterator[Any]:
    """Build apps for this test (all torn down after it, S3 buckets included)."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        clock = overrides.pop("clock", None)
        kwargs = {"clock": clock} if clock else {}
        app = create_app(make_settings(**overrides), redis_client=redis_client, **kwargs)
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        components = app.extensions["tusserver"]
        components.keeper.stop()
        if components.events is not None:
            components.events.stop()
        if components.store.name == "s3":
            from tests.support.s3 import drop_bucket

            drop_bucket(components.store)


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()
