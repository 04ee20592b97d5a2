"""Cross-origin uploads: preflight, allowed origins, exposed headers, errors included."""

from __future__ import annotations

from typing import Any

from tests.support.tus import TUS, create, patch

ORIGIN = "http://uploader.example"


def test_preflight_allows_tus_headers_and_is_cacheable(make_app: Any) -> None:
    client = make_app(cors_origins=(ORIGIN,), cors_max_age=600).test_client()
    response = client.options(
        "/files/",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type, "
            "upload-checksum, x-http-method-override, x-request-id, authorization",
        },
    )
    assert response.status_code < 300
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("tus-resumable", "upload-offset", "upload-checksum", "authorization"):
        assert header in allowed
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_responses_and_errors_carry_cors_headers(make_app: Any) -> None:
    client = make_app(cors_origins=(ORIGIN,)).test_client()
    created = client.post("/files/", headers={**TUS, "Upload-Length": "4", "Origin": ORIGIN})
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = created.headers["Access-Control-Expose-Headers"].lower()
    for header in (
        "location",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-expires",
        "upload-concat",
        "tus-resumable",
        "tus-version",
    ):
        assert header in exposed

    path = "/files/" + created.headers["Location"].rsplit("/", 1)[-1]
    wrong_version = client.head(path, headers={"Tus-Resumable": "0.2", "Origin": ORIGIN})
    assert wrong_version.status_code == 412
    assert wrong_version.headers["Access-Control-Allow-Origin"] == ORIGIN
    conflict = patch(client, path, 3, b"x", Origin=ORIGIN)
    assert conflict.status_code == 409
    assert conflict.headers["Access-Control-Allow-Origin"] == ORIGIN
    missing = client.get("/files/" + "0" * 32, headers={"Origin": ORIGIN})
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_other_origins_and_the_default_get_no_cors_headers(make_app: Any) -> None:
    configured = make_app(cors_origins=(ORIGIN,)).test_client()
    response = configured.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Origin": "http://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers

    default = make_app().test_client()
    response = default.post("/files/", headers={**TUS, "Upload-Length": "1", "Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_wildcard_allows_any_origin(make_app: Any) -> None:
    client = make_app(cors_origins=("*",)).test_client()
    path = create(client, 2)
    response = client.head(path, headers={**TUS, "Origin": "http://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "http://anywhere.example")


def test_an_allowed_origin_is_matched_whole_never_as_a_pattern(make_app: Any) -> None:
    client = make_app(cors_origins=("https://up.example.com", "http://[::1]:8080")).test_client()
    for lookalike in (
        "https://up.example.com.evil.net",
        "https://upxexample.com",
        "http://[::1]:80800",
        "http://:8080",
    ):
        response = client.options("/files/", headers={"Origin": lookalike})
        assert "Access-Control-Allow-Origin" not in response.headers, lookalike
    for exact in ("https://up.example.com", "http://[::1]:8080"):
        response = client.options("/files/", headers={"Origin": exact})
        assert response.headers["Access-Control-Allow-Origin"] == exact


def test_credentials_only_for_listed_origins_never_for_the_wildcard(make_app: Any) -> None:
    listed = make_app(cors_origins=(ORIGIN,)).test_client()
    response = listed.options("/api/uploads", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Credentials"] == "true"

    anyone = make_app(cors_origins=("*",)).test_client()
    response = anyone.options("/api/uploads", headers={"Origin": "http://anywhere.example"})
    assert "Access-Control-Allow-Credentials" not in response.headers
