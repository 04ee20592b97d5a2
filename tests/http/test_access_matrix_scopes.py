"""The access matrix's scope columns: every route, sent with a token that has one scope only.

Alice's token with only `upload`, only `read`, only `manage`, and the admin's token with only
`admin` (tests/http/test_access_matrix.py has the world, the routes and the expected statuses).
Scopes are checked in the service before any byte is stored, so one data store is enough.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.http.test_access_matrix import ROUTES, SCOPE_COLUMNS, World, build_world, check_case


@pytest.fixture
def store_kind() -> str:
    return "local"


@pytest.fixture
def world(make_app: Any) -> World:
    app: Flask = make_app(auth="required", metrics_enabled=True)
    return build_world(app)


@pytest.mark.parametrize("principal", list(SCOPE_COLUMNS))
@pytest.mark.parametrize("route", list(ROUTES))
def test_scoped_access(world: World, route: str, principal: str) -> None:
    check_case(world, route, principal)
