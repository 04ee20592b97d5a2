"""Bad input: a clear 4xx with a message, no change of state, and never a 500."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.tus import (
    OCTET,
    TUS,
    all_stored,
    create,
    head,
    patch,
    send_raw,
    tus_state,
    upload_id,
)
from tusserver import create_app
from tusserver.state.connect import connect

ABSENT = "0123456789abcdef0123456789abcdef"

MALFORMED_NUMBERS = [
    "",
    " ",
    "abc",
    "-1",
    "+5",
    "1.5",
    "1e3",
    "0x10",
    "5 5",
    "5,5",
    "١٢",  # Arabic-Indic digits: int() would accept them
    "99999999999999999999",  # 20 digits
    "9223372036854775808",  # 2**63
    "1" * 1000,
]


def message(response: Any) -> str:
    return response.get_data(as_text=True)


def listed(client: Any) -> int:
    return client.get("/api/uploads").get_json()["total"]


# --- malformed numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("value", MALFORMED_NUMBERS)
def test_malformed_upload_length_on_post_is_400(client: Any, value: str) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Length": value})
    assert response.status_code == 400
    assert "Upload-Length" in message(response)
    assert listed(client) == 0


@pytest.mark.parametrize("value", MALFORMED_NUMBERS)
def test_malformed_upload_offset_is_400(client: Any, value: str) -> None:
    path = create(client, 10)
    before = tus_state(client, path)
    response = client.patch(path, data=b"abc", headers={**TUS, **OCTET, "Upload-Offset": value})
    assert response.status_code == 400
    assert "Upload-Offset" in message(response)
    assert tus_state(client, path) == before


@pytest.mark.parametrize("value", MALFORMED_NUMBERS)
def test_malformed_upload_length_on_patch_is_400(client: Any, value: str) -> None:
    path = create(client, None)
    before = tus_state(client, path)
    response = patch(client, path, 0, b"abc", Upload_Length=value)
    assert response.status_code == 400
    assert tus_state(client, path) == before


@pytest.mark.parametrize("value", [v for v in MALFORMED_NUMBERS if v.strip()])
def test_malformed_content_length_on_patch_is_400(app: Any, client: Any, value: str) -> None:
    path = create(client, 10)
    before = tus_state(client, path)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(client, "PATCH", path, io.BytesIO(b"abc"), headers, content_length=value)
    assert response.status_code == 400
    assert "Content-Length" in message(response)
    assert tus_state(client, path) == before


@pytest.mark.parametrize("value", [v for v in MALFORMED_NUMBERS if v.strip()])
def test_malformed_content_length_on_post_is_400(client: Any, value: str) -> None:
    headers = {**TUS, **OCTET, "Upload-Length": "3"}
    response = send_raw(client, "POST", "/files/", io.BytesIO(b"abc"), headers, value)
    assert response.status_code == 400
    assert listed(client) == 0


def test_empty_content_length_is_no_body(client: Any) -> None:
    """PEP 3333: CONTENT_LENGTH "may be empty or absent"; both mean no body."""
    path = create(client, 10)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(client, "PATCH", path, io.BytesIO(b""), headers, content_length="")
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "0"
    headers = {**TUS, "Upload-Length": "3"}
    response = send_raw(client, "POST", "/files/", io.BytesIO(b""), headers, content_length="")
    assert response.status_code == 201


def test_huge_upload_length_is_accepted_without_limit(client: Any) -> None:
    path = create(client, 2**63 - 1)
    assert head(client, path).headers["Upload-Length"] == str(2**63 - 1)
    assert patch(client, path, 0, b"abc").status_code == 204


def test_huge_upload_length_is_413_with_a_limit(make_app: Any) -> None:
    client = make_app(max_size=10**6).test_client()
    response = client.post("/files/", headers={**TUS, "Upload-Length": str(2**63 - 1)})
    assert response.status_code == 413
    assert listed(client) == 0


def test_huge_upload_offset_is_409(client: Any) -> None:
    path = create(client, 10)
    response = patch(client, path, 2**63 - 1, b"abc")
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "0"


def test_huge_content_length_is_413_before_reading(client: Any) -> None:
    path = create(client, 10)
    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(client, "PATCH", path, io.BytesIO(b"abc"), headers, str(2**62))
    assert response.status_code == 413
    assert head(client, path).headers["Upload-Offset"] == "0"


# --- Tus-Resumable ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.2.2", "1.0", "2.0.0", "", "1.0.0, 2.0.0", "x" * 300])
def test_unsupported_tus_resumable_is_412_with_tus_version(client: Any, version: str) -> None:
    path = create(client, 10)
    before = tus_state(client, path)
    bad = {"Tus-Resumable": version}
    responses = [
        client.post("/files/", headers={**bad, "Upload-Length": "5"}),
        client.patch(path, data=b"abc", headers={**bad, **OCTET, "Upload-Offset": "0"}),
        client.delete(path, headers=bad),
        client.head(path, headers=bad),
    ]
    for response in responses:
        assert response.status_code == 412
        assert response.headers["Tus-Version"] == "1.0.0"
    assert "1.0.0" in message(responses[0])
    assert tus_state(client, path) == before
    assert listed(client) == 1


def test_missing_tus_resumable_is_412(client: Any) -> None:
    path = create(client, 10)
    before = tus_state(client, path)
    for response in (
        client.post("/files/", headers={"Upload-Length": "5"}),
        client.patch(path, data=b"abc", headers={**OCTET, "Upload-Offset": "0"}),
        client.delete(path),
    ):
        assert response.status_code == 412
        assert response.headers["Tus-Version"] == "1.0.0"
        assert "Tus-Resumable" in message(response)
    assert tus_state(client, path) == before
    assert listed(client) == 1


# --- metadata ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "filename",  # a lone key is fine; see the next test
        "filename ***",
        "filename YQ",  # unpadded
        "filename YR==",  # non-canonical
        ",filename YQ==",
        "filename YQ==,",
        "filename YQ==,,x YQ==",
        "filename YQ==,filename YQ==",
        "file name YQ==",
        "filename  YQ==",
        "k\u00e9y YQ==",
    ],
)
def test_bad_metadata_is_400(client: Any, value: str) -> None:
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": value}
    )
    if value == "filename":
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert "Upload-Metadata" in message(response)
    assert listed(client) == 0


def test_binary_metadata_is_kept_and_returned_as_sent(client: Any) -> None:
    """tus 1.0.0: HEAD returns each value "as specified by the Client during the creation"."""
    blob = base64.b64encode(bytes(range(256))).decode()
    name = base64.b64encode(b"caf\xe9.txt").decode()  # Latin-1, not UTF-8
    sent = f"filename {name},blob {blob},flag"
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": sent}
    )
    assert response.status_code == 201
    path = response.headers["Location"].split("localhost", 1)[-1]
    assert client.head(path, headers=TUS).headers["Upload-Metadata"] == sent
    listed_upload = client.get("/api/uploads").get_json()["uploads"][0]
    assert listed_upload["filename"] == "caf\ufffd.txt"  # shown with a replacement character


def test_oversized_metadata_is_431(client: Any) -> None:
    value = "filename " + base64.b64encode(b"x" * 4000).decode()
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": value}
    )
    assert response.status_code == 431
    assert listed(client) == 0


def test_metadata_limit_is_configurable(make_app: Any) -> None:
    client = make_app(max_metadata_size=100).test_client()
    value = "filename " + base64.b64encode(b"x" * 80).decode()
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": value}
    )
    assert response.status_code == 431


# --- ids that are not ours --------------------------------------------------------------------


@pytest.fixture
def untouchable_store(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if anything reaches the data store."""
    calls: list[str] = []
    store = app.extensions["tusserver"].store
    for name in ("create", "write", "read", "delete", "local_path", "save_info", "discard"):

        def refuse(*args: Any, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            raise AssertionError(f"the data store was asked to {_name}")

        monkeypatch.setattr(store, name, refuse)
    yield calls
    assert calls == []


@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files//etc/passwd",
        "/files/ABC",
        "/files/" + "a" * 33,
        "/files/" + "a" * 31,
        "/files/" + ABSENT.upper(),
        "/files/" + ABSENT + "/",
        "/files/" + ABSENT + "/x",
        "/files/" + "g" * 32,
        "/files/%00",
        "/files/" + ABSENT[:-1] + "%C3%A9",
    ],
)
def test_ids_that_are_not_ours_are_404(
    client: Any, untouchable_store: list[str], path: str
) -> None:
    responses = {
        "tus HEAD": client.head(path, headers=TUS),
        "plain HEAD": client.head(path),
        "GET": client.get(path),
        "PATCH": client.patch(path, data=b"x", headers={**TUS, **OCTET, "Upload-Offset": "0"}),
        "DELETE": client.delete(path, headers=TUS),
        "API GET": client.get("/api/uploads/" + path.removeprefix("/files/")),
    }
    for name, response in responses.items():
        assert response.status_code == 404, name
        assert b"root:" not in response.data


# --- routes and methods -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/files/a/b", "/api/nope", "/api/uploads/a/b"])
def test_unknown_routes_are_404(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_api_route_answers_json(client: Any) -> None:
    for method in ("GET", "POST", "PATCH", "DELETE"):
        response = client.open("/api/nope", method=method)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/files/" + ABSENT, {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
        ("POST", "/files/" + ABSENT, {"GET", "HEAD", "PATCH", "DELETE", "OPTIONS"}),
        ("PUT", "/files/", {"POST", "OPTIONS"}),
        ("PATCH", "/files/", {"POST", "OPTIONS"}),
        ("DELETE", "/files/", {"POST", "OPTIONS"}),
        ("POST", "/api/uploads", {"GET"}),
        ("PUT", "/api/uploads/" + ABSENT, {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/health", {"GET"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: Any, method: str, path: str, allowed: set[str]
) -> None:
    response = client.open(path, method=method, headers=TUS)
    assert response.status_code == 405
    methods = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= methods
    assert method not in methods
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_web_client_is_still_served(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"<html" in response.data.lower()


# --- Redis unavailable --------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broken_client(app: Any, make_settings: Any) -> Iterator[Any]:
    """A second app on the same data store whose Redis is a closed port."""
    settings = app.extensions["tusserver"].settings
    broken = create_app(
        make_settings(s3_bucket=settings.s3_bucket),
        redis_client=connect(f"redis://127.0.0.1:{closed_port()}/0"),
    )
    yield broken.test_client()
    broken.extensions["tusserver"].keeper.stop()


def test_redis_down_is_503_and_changes_nothing(app: Any, client: Any, broken_client: Any) -> None:
    path = create(client, 200_000)
    patch(client, path, 0, b"a" * 70_000)
    before = tus_state(client, path)
    stored = all_stored(app)
    responses = [
        broken_client.post("/files/", headers={**TUS, "Upload-Length": "5"}),
        broken_client.post("/files/", data=b"abc", headers={**TUS, **OCTET, "Upload-Length": "5"}),
        broken_client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{path}"}),
        patch(broken_client, path, 70_000, b"b" * 70_000),
        broken_client.delete(path, headers=TUS),
        broken_client.head(path, headers=TUS),
        broken_client.head(path),
        broken_client.get(path),
        broken_client.get("/api/uploads"),
        broken_client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "x"}),
        broken_client.delete(f"/api/uploads/{upload_id(path)}"),
    ]
    for response in responses:
        assert response.status_code == 503, response.request.method
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "traceback" not in message(responses[0]).lower()
    assert tus_state(client, path) == before
    assert all_stored(app) == stored
    assert listed(client) == 1


# --- every bad PATCH leaves the upload as it was ------------------------------------------------


BAD_PATCHES: dict[str, dict[str, Any]] = {
    "wrong offset": {"offset": 0},
    "offset ahead": {"offset": 50},
    "no content type": {"headers": {"Content-Type": ""}},
    "wrong content type": {"headers": {"Content-Type": "text/plain"}},
    "no tus-resumable": {"headers": {"Tus-Resumable": None}},
    "bad tus-resumable": {"headers": {"Tus-Resumable": "9"}},
    "bad offset": {"headers": {"Upload-Offset": "ten"}},
    "no offset": {"headers": {"Upload-Offset": None}},
    "too long": {"data": b"x" * 200},
    "length changes": {"headers": {"Upload-Length": "99"}},
    "bad checksum": {"headers": {"Upload-Checksum": "sha1 " + "A" * 27 + "="}},
    "unknown checksum": {"headers": {"Upload-Checksum": "crc32 AAAAAA=="}},
    "malformed checksum": {"headers": {"Upload-Checksum": "sha1"}},
    "bad content length": {"content_length": "-3"},
}


@pytest.mark.parametrize("case", BAD_PATCHES)
def test_bad_patch_leaves_state_unchanged(app: Any, client: Any, case: str) -> None:
    spec = BAD_PATCHES[case]
    path = create(client, 100, filename="x.txt")
    patch(client, path, 0, b"0123456789")
    before = tus_state(client, path)
    stored = all_stored(app)

    headers: dict[str, str] = {**TUS, **OCTET, "Upload-Offset": str(spec.get("offset", 10))}
    for name, value in spec.get("headers", {}).items():
        headers.pop(name, None)
        if value:
            headers[name] = value
    data = spec.get("data", b"abcdef")
    response = send_raw(
        client, "PATCH", path, io.BytesIO(data), headers, spec.get("content_length", len(data))
    )

    assert 400 <= response.status_code < 500
    assert message(response).strip()
    assert tus_state(client, path) == before
    assert all_stored(app) == stored
    assert client.get(f"/api/uploads/{upload_id(path)}").get_json()["offset"] == 10


# --- nothing a client sends produces a 500 ------------------------------------------------------


NASTY_HEADERS = [
    {"Upload-Length": "5", "Upload-Concat": "partial", "Upload-Defer-Length": "1"},
    {"Upload-Concat": "final;" + " ".join(["/files/" + ABSENT] * 500)},
    {"Upload-Concat": "final;http://[::1/files/" + ABSENT},
    {"Upload-Concat": "final;http://localhost:99999/files/" + ABSENT},
    {"Upload-Concat": "final;" + "%" * 300},
    {"Upload-Length": "5", "Upload-Checksum": "sha1 " + "=" * 28},
    {"Upload-Length": "5", "Upload-Metadata": "\x00 YQ=="},
    {"Upload-Length": "5", "Upload-Metadata": "a " + "=" * 4000},
    {"Upload-Length": "5", "X-Request-ID": "\x7f" * 500},
    {"Upload-Length": "5", "X-HTTP-Method-Override": "\x00"},
    {"Upload-Length": "5", "X-HTTP-Method-Override": "TRACE"},
    {"Upload-Length": "5", "Transfer-Encoding": "gzip"},
    {"Upload-Length": "5", "Range": "bytes=0-0"},
    {"Upload-Length": "5", "Content-Type": "application/offset+octet-stream; \x01"},
]


@pytest.mark.parametrize("headers", NASTY_HEADERS)
def test_nasty_posts_never_500(client: Any, headers: dict[str, str]) -> None:
    response = client.post("/files/", headers={**TUS, **headers})
    assert response.status_code < 500, message(response)


NASTY_DOWNLOAD_HEADERS = [
    {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2000, 2))},
    {"Range": "bytes=99999999999999999999999-"},
    {"Range": "bytes=-99999999999999999999999"},
    {"Range": "bytes=0-0", "If-Range": "garbage"},
    {"Range": "bytes=0-0", "If-Range": 'W/"weak"'},
    {"If-Modified-Since": "Mon, 99 Foo 9999 99:99:99 GMT"},
    {"If-Modified-Since": "Sat, 01 Jan 0001 00:00:00 GMT"},
    {"If-None-Match": '"unterminated'},
    {"If-None-Match": ","},
]


@pytest.mark.parametrize("headers", NASTY_DOWNLOAD_HEADERS)
def test_nasty_downloads_never_500(client: Any, headers: dict[str, str]) -> None:
    path = create(client, 5)
    patch(client, path, 0, b"hello")
    for response in (client.get(path, headers=headers), client.head(path, headers=headers)):
        assert response.status_code < 500, headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_empty_upload_with_ranges_never_500(client: Any) -> None:
    path = create(client, 0)
    for value in ("bytes=0-", "bytes=-5", "bytes=0-0"):
        response = client.get(path, headers={"Range": value})
        assert response.status_code in (200, 416), value


# --- security headers on every response -------------------------------------------------------


def test_nosniff_on_every_response(client: Any) -> None:
    path = create(client, 3)
    responses = [
        client.options("/files/"),
        client.post("/files/", headers={**TUS, "Upload-Length": "3"}),
        client.post("/files/", headers=TUS),  # 400
        client.post("/files/", headers={"Upload-Length": "3"}),  # 412
        head(client, path),
        patch(client, path, 1, b"abc"),  # 409
        client.patch(path, data=b"abc", headers={**TUS, "Upload-Offset": "0"}),  # 415
        client.get(path),  # 409
        patch(client, path, 0, b"abc"),  # 204
        client.get(path),  # 200
        client.get(path, headers={"Range": "bytes=5-"}),  # 416
        client.get(path, headers={"If-None-Match": client.get(path).headers["ETag"]}),  # 304
        client.get(f"/files/{ABSENT}"),  # 404
        client.put(path),  # 405
        client.get("/nope"),  # 404
        client.get("/"),
        client.get("/api/uploads"),
        client.get("/api/uploads?limit=x"),  # 400 JSON
        client.get("/api/health"),
        client.delete(path, headers=TUS),  # 204
        head(client, path),  # 410
    ]
    for response in responses:
        assert response.headers.get("X-Content-Type-Options") == "nosniff", (
            response.request.method,
            response.request.path,
            response.status_code,
        )
