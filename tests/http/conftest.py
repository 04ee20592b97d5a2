"""The tus protocol through Flask's test client, against real Redis and each data store."""

from tests.support.app_fixtures import (  # noqa: F401 - fixtures, found by pytest here
    S3_PART_SIZE,
    app,
    client,
    make_app,
    make_settings,
    store_kind,
)
