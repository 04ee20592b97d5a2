"""Fuzz the JSON API against its own OpenAPI document with schemathesis.

Every operation of `/api/openapi.json`, called with schemathesis-generated requests (valid and
invalid ones) by an admin, a user and anonymous: no 500 ever, and every status code, header and
body must be one the document describes. The examples are bounded and derandomized so that this
runs in seconds and the same way in CI every time.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.tus import create, patch, upload_id
from tusserver.openapi import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document())

FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def store_kind() -> str:
    """The JSON API reaches the data store only through the service: one store is enough."""
    return "local"


@pytest.fixture
def fuzz_app(make_app: Any) -> Any:
    app = make_app()
    client = app.test_client()
    path = create(client, 5, filename="a.txt")
    patch(client, path, 0, b"hello")
    app.config["fuzz.upload_id"] = upload_id(path)
    return app


def call(case: Any, app: Any, headers: dict[str, str]) -> None:
    # Half the requests aim at a real upload, so the 2xx answers are checked as well as the 404s.
    if "upload_id" in (case.path_parameters or {}) and hash(repr(case.body)) % 2 == 0:
        case.path_parameters["upload_id"] = app.config["fuzz.upload_id"]
    response = case.call(app=app, headers=headers)
    assert response.status_code < 500, response.text
    case.validate_response(response)


@schema.parametrize()
@FUZZ
def test_the_api_as_admin(case: Any, fuzz_app: Any) -> None:
    call(case, fuzz_app, {})


def test_the_document_is_served_and_public(client: Any) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert "/api/uploads/{upload_id}/links" in document["paths"]
    assert "/api/grants" in document["paths"]
