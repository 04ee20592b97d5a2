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
from schemathesis.config import SchemathesisConfig

from tests.support.tus import create, patch, upload_id
from tusserver.openapi import openapi_document
from tusserver.settings import Settings

BASE_URL = "http://localhost"

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # A schema-valid request may still meet a state that refuses it: an upload that is
            # gone (410) or being written (423), a user that exists (409), a full quota (413).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "410", "413", "423", "429"]
            },
            # Invalid requests are still sent (they must get no 500 and a documented answer),
            # but the API is lenient on purpose where the schema is strict: unknown fields are
            # ignored, an empty `owner` means "mine", names are trimmed.
            "negative_data_rejection": {"enabled": False},
        }
    }
)

FUZZ = settings(
    max_examples=5,
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
    """Accounts on: an admin and a user with API tokens, and one complete upload of the user."""
    app = make_app(auth="required")
    accounts = app.extensions["tusserver"].accounts
    headers = {}
    for name, role in (("root", "admin"), ("alice", "user")):
        accounts.create_user(name, None, role)  # token-only users: no password hashing to pay
        token, _ = accounts.issue_token(name, "fuzz")
        headers[role] = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    path = create(client, 5, headers=headers["user"], filename="a.txt")
    patch(client, path, 0, b"hello", **headers["user"])
    app.config["fuzz.upload_id"] = upload_id(path)
    app.config["fuzz.headers"] = headers
    return app


# The document the server serves (`test_the_served_document_is_this_one` holds them equal).
# The event stream never ends by itself, so a client that reads whole bodies cannot call it:
# tests/http/test_events.py covers it.
schema = schemathesis.openapi.from_dict(openapi_document(Settings()), config=CONFIG).exclude(
    operation_id="eventStream"
)


def call(case: Any, app: Any, who: str) -> None:
    # Half the requests aim at a real upload, so the 2xx answers are checked as well as the 404s.
    if "upload_id" in (case.path_parameters or {}) and hash(repr(case.body)) % 2 == 0:
        case.path_parameters["upload_id"] = app.config["fuzz.upload_id"]
    headers = dict(app.config["fuzz.headers"].get(who, {}))
    # Requests, and the checks' own probe requests, go through WSGI straight into this test's
    # app. (`schemathesis.pytest.from_fixture` would bind it for us, but does not run on pytest 9.)
    case.operation.app = case.operation.schema.app = app
    response = case.call(headers=headers, base_url=BASE_URL)
    assert response.status_code < 500, response.text
    case.validate_response(response, headers=headers, transport_kwargs={"base_url": BASE_URL})


@schema.parametrize()
@FUZZ
def test_the_api_as_admin(case: Any, fuzz_app: Any) -> None:
    call(case, fuzz_app, "admin")


@schema.parametrize()
@FUZZ
def test_the_api_as_a_user(case: Any, fuzz_app: Any) -> None:
    call(case, fuzz_app, "user")


@schema.parametrize()
@FUZZ
def test_the_api_as_anonymous(case: Any, fuzz_app: Any) -> None:
    call(case, fuzz_app, "anonymous")


def test_the_served_document_is_public_and_the_one_fuzzed(make_app: Any) -> None:
    response = make_app(auth="required").test_client().get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document == openapi_document(Settings())
    assert document["openapi"].startswith("3.1")
    assert "/api/uploads/{upload_id}/links" in document["paths"]
    assert "/api/grants" in document["paths"]
