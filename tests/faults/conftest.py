"""Fault tests: the write path and lifecycle under lost locks, races and backend failures."""

from tests.support.app_fixtures import (  # noqa: F401 - fixtures, found by pytest here
    S3_PART_SIZE,
    app,
    client,
    make_app,
    make_settings,
    store_kind,
)
