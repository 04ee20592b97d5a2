"""OPTIONS: what the server tells a tus client about itself."""

from __future__ import annotations

from typing import Any

from tests.support.tus import create


def test_options_lists_version_extensions_and_checksums(client: Any) -> None:
    response = client.options("/files/")
    assert response.status_code in (200, 204)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = response.headers["Tus-Extension"].split(",")
    for name in (
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "expiration",
        "checksum",
        "concatenation",
    ):
        assert name in extensions
    algorithms = response.headers["Tus-Checksum-Algorithm"].split(",")
    assert {"sha1", "sha256", "md5"} <= set(algorithms)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == b""


def test_options_needs_no_tus_resumable_and_ignores_a_bad_one(client: Any) -> None:
    response = client.options("/files/", headers={"Tus-Resumable": "0.2.2"})
    assert response.status_code in (200, 204)
    assert response.headers["Tus-Version"] == "1.0.0"


def test_options_without_max_size_has_no_tus_max_size(client: Any) -> None:
    assert "Tus-Max-Size" not in client.options("/files/").headers


def test_options_announces_max_size(make_app: Any) -> None:
    client = make_app(max_size=1000).test_client()
    assert client.options("/files/").headers["Tus-Max-Size"] == "1000"


def test_options_on_an_upload_url(client: Any) -> None:
    path = create(client, 10)
    response = client.options(path)
    assert response.status_code in (200, 204)
    assert response.headers["Tus-Version"] == "1.0.0"
    assert "creation" in response.headers["Tus-Extension"]
