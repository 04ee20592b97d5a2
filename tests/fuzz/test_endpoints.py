"""Property-based fuzzing of the tus and JSON endpoints through Flask's test client.

Properties, for any request hypothesis makes up:
- never a 5xx (real Redis and a real local store are healthy throughout, so a 5xx is a bug);
- a 4xx changes nothing: the uploads' state and stored bytes are as before;
- the server stays healthy (`/api/health` is 200 after every request).

Bounded for CI (`TUSTEST_FUZZ_EXAMPLES`, default 150 per test); the closing run uses 5,000+:
    TUSTEST_FUZZ_EXAMPLES=2500 .venv/bin/python -m pytest tests/fuzz -q
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.tus import TUS, all_stored, create, patch, upload_id
from tusserver import create_app
from tusserver.settings import Settings

EXAMPLES = int(os.environ.get("TUSTEST_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
SEEN: dict[int, int] = {}


@pytest.fixture(scope="module", autouse=True)
def status_report() -> Iterator[None]:
    """Print how many fuzzed requests got each status (visible with `pytest -s`)."""
    yield
    total = sum(SEEN.values())
    server_errors = sum(n for status, n in SEEN.items() if status >= 500)
    statuses = dict(sorted(SEEN.items()))
    print(f"\nfuzz: {total} requests, {server_errors} answered 5xx, by status {statuses}")


@pytest.fixture
def fuzz_app(
    tmp_path: Path, redis_url: str, redis_prefix: str, redis_client: Any
) -> Iterator[tuple[Flask, list[str]]]:
    settings_ = Settings(
        data_dir=tmp_path,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        max_size=1_000_000,
        auth="none",  # one implicit admin: the fuzz aims at parsing and state, not access
    )
    app = create_app(settings_, redis_client=redis_client)
    app.testing = True
    client = app.test_client()
    partial = create(client, 4, headers={"Upload-Concat": "partial"})
    assert patch(client, partial, 0, b"abcd").status_code == 204
    paths = [create(client, 100, filename="a.txt"), create(client, None), partial]
    assert patch(client, paths[0], 0, b"0123456789").status_code == 204
    final = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{partial}"})
    paths.append("/files/" + final.headers["Location"].rsplit("/", 1)[-1])
    yield app, paths
    app.extensions["tusserver"].keeper.stop()


def snapshot(app: Flask, paths: list[str]) -> Any:
    state = app.extensions["tusserver"].state
    return (
        [state.get(upload_id(path), with_parts=True) for path in paths],
        all_stored(app),
        state.list(1000).total,
    )


latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
numbers = st.one_of(
    st.integers(-5, 2**70).map(str), st.sampled_from(["", " 1", "1 ", "0x10", "1e3", "٣", "-0"])
)
b64 = st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode())
metadata = st.one_of(
    latin1,
    st.lists(st.tuples(st.from_regex(r"[a-zA-Z]{1,6}", fullmatch=True), b64), max_size=4).map(
        lambda pairs: ",".join(f"{k} {v}" for k, v in pairs)
    ),
)
HEADER_VALUES = {
    "Tus-Resumable": st.sampled_from(["1.0.0", "1.0.0", "0.2.2", "", "1.0.0 "]),
    "Upload-Length": numbers,
    "Upload-Offset": numbers,
    "Upload-Defer-Length": st.sampled_from(["1", "0", "true", ""]),
    "Upload-Metadata": metadata,
    "Upload-Concat": st.one_of(latin1, st.sampled_from(["partial", "final;", "final;/files/x"])),
    "Upload-Checksum": st.one_of(latin1, b64.map(lambda v: f"sha1 {v}")),
    "Content-Type": st.sampled_from(
        ["application/offset+octet-stream", "application/json", "text/plain", ""]
    ),
    "Range": st.one_of(
        latin1, st.sampled_from(["bytes=0-", "bytes=-5", "bytes=5-2", "bytes=0-0,2-3"])
    ),
    "X-HTTP-Method-Override": st.sampled_from(["DELETE", "PATCH", "HEAD", "GET", "PUT", "x"]),
    "If-None-Match": latin1,
    "If-Range": latin1,
}
headers = st.dictionaries(
    st.sampled_from(sorted(HEADER_VALUES)), st.just(None), max_size=6
).flatmap(lambda keys: st.fixed_dictionaries({k: HEADER_VALUES[k] for k in keys}))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps({"filename": v}).encode()),
    st.text().map(
        lambda t: json.dumps({"filename": t}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    ),
    st.sampled_from(
        [
            b'{"filename": "\\ud800"}',
            b"[" * 5000 + b"]" * 5000,
            b"{",
            b"null",
            b'{"filename": "a/b"}',
        ]
    ),
    st.binary(max_size=64),
)


def target(paths: list[str], choice: int, noise: str) -> str:
    options = [*paths, f"/files/{noise}", "/files/", f"/files/{'0' * 32}"]
    return options[choice % len(options)]


def check(app: Flask, paths: list[str], method: str, path: str, **kwargs: Any) -> None:
    client = app.test_client()
    before = snapshot(app, paths)
    response = client.open(path, method=method, **kwargs)
    SEEN[response.status_code] = SEEN.get(response.status_code, 0) + 1
    assert response.status_code < 500, (method, path, kwargs, response.get_data()[:300])
    if 400 <= response.status_code < 500:
        assert snapshot(app, paths) == before, (method, path, kwargs, response.status_code)
    assert client.get("/api/health").status_code == 200


@FUZZ
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]),
    choice=st.integers(0, 20),
    noise=latin1.filter(lambda s: "/" not in s and "?" not in s and "#" not in s),
    sent=headers,
    body=st.binary(max_size=200),
)
def test_tus_endpoints(
    fuzz_app: tuple[Flask, list[str]],
    method: str,
    choice: int,
    noise: str,
    sent: dict[str, str],
    body: bytes,
) -> None:
    app, paths = fuzz_app
    path = target(paths, choice, noise.replace("%", "%25"))
    check(app, paths, method, path, headers=sent, data=body if method != "HEAD" else b"")


@FUZZ
@given(
    method=st.sampled_from(["GET", "PATCH", "DELETE", "POST", "PUT"]),
    choice=st.integers(0, 20),
    body=json_bodies,
    query=st.dictionaries(st.sampled_from(["limit", "offset", "owner"]), latin1, max_size=2),
)
def test_json_api(
    fuzz_app: tuple[Flask, list[str]],
    method: str,
    choice: int,
    body: bytes,
    query: dict[str, str],
) -> None:
    app, paths = fuzz_app
    ids = [upload_id(p) for p in paths]
    options = [f"/api/uploads/{i}" for i in ids] + ["/api/uploads", "/api/uploads/nothing"]
    path = options[choice % len(options)]
    if method == "DELETE":
        method = "GET"  # deleting the fixtures would end the run; DELETE is fuzzed on /files/
    check(app, paths, method, path, data=body, query_string=query, content_type="application/json")
