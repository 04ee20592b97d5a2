"""GET (and plain HEAD) of an upload: bytes, ranges, validators and safe headers."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

import pytest

from tests.support.tus import create, patch

DATA = hashlib.sha512(b"download").digest() * 2500  # 160,000 bytes: crosses two S3 parts
SIZE = len(DATA)
ABSENT = "0123456789abcdef0123456789abcdef"


def complete(client: Any, data: bytes = DATA, **meta: str) -> str:
    path = create(client, len(data), **meta)
    if data:
        response = patch(client, path, 0, data)
        assert response.status_code == 204
    return path


@pytest.fixture
def path(client: Any) -> str:
    return complete(client)


# --- whole file -------------------------------------------------------------------------------


def test_get_returns_the_whole_upload(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert hashlib.sha256(response.data).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    assert parsedate_to_datetime(response.headers["Last-Modified"])
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_get_of_an_empty_upload(client: Any) -> None:
    path = complete(client, b"")
    response = client.get(path)
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "0"


@pytest.mark.parametrize("method", ["GET", "HEAD"])  # HEAD: a plain one, download headers
def test_download_of_an_incomplete_upload_is_409_with_offset(client: Any, method: str) -> None:
    path = create(client, 10)
    patch(client, path, 0, b"abc")
    response = client.open(path, method=method)
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "3"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert b"abc" not in response.data
    if method == "HEAD":
        assert response.data == b""


def test_get_of_a_deferred_upload_is_409(client: Any) -> None:
    path = create(client, None)
    patch(client, path, 0, b"abc")
    response = client.get(path)
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "3"


def test_get_of_an_unknown_upload_is_404(client: Any) -> None:
    response = client.get(f"/files/{ABSENT}")
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=65530-65545", 65530, 65545),  # across the first S3 part boundary
        ("bytes=1000-140000", 1000, 140000),  # spans a whole part
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
        ("bytes=150000-", 150000, SIZE - 1),  # open range
        ("bytes=-100", SIZE - 100, SIZE - 1),  # suffix
        (f"bytes=100-{SIZE * 2}", 100, SIZE - 1),  # end past the file: clamped
    ],
)
def test_single_range_is_206(client: Any, path: str, header: str, start: int, end: int) -> None:
    response = client.get(path, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.data == DATA[start : end + 1]


def test_suffix_longer_than_the_file_gives_the_whole_file(client: Any) -> None:
    """RFC 9110 14.1.3: a suffix longer than the representation selects all of it, and that
    range is satisfiable, so the answer is a 206 that says so."""
    path = complete(client, b"0123456789")
    response = client.get(path, headers={"Range": "bytes=-100"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == "bytes 0-9/10"
    assert response.headers["Content-Length"] == "10"
    assert response.data == b"0123456789"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"])
def test_unsatisfiable_range_is_416(client: Any, path: str, header: str) -> None:
    response = client.get(path, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert DATA[:16] not in response.data


def test_multi_range_gets_the_whole_file(client: Any, path: str) -> None:
    response = client.get(path, headers={"Range": "bytes=0-9,100-109"})
    assert response.status_code == 200
    assert "Content-Range" not in response.headers
    assert response.data == DATA


@pytest.mark.parametrize(
    "header", ["bytes=abc", "bytes=5-2", "bytes", "items=0-5", "bytes=-0", "bytes=1-2-3"]
)
def test_malformed_or_foreign_range_is_ignored(client: Any, path: str, header: str) -> None:
    response = client.get(path, headers={"Range": header})
    assert response.status_code == 200
    assert response.data == DATA


# --- validators -------------------------------------------------------------------------------


def test_if_none_match_gives_304(client: Any, path: str) -> None:
    etag = client.get(path).headers["ETag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get(path, headers={"If-None-Match": value})
        assert response.status_code == 304, value
        assert response.data == b""
        assert response.headers["ETag"] == etag
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_if_none_match_with_another_etag_gives_the_file(client: Any, path: str) -> None:
    response = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert response.status_code == 200
    assert response.data == DATA


def test_etags_differ_between_uploads(client: Any, path: str) -> None:
    other = complete(client, b"other")
    assert client.get(path).headers["ETag"] != client.get(other).headers["ETag"]
    response = client.get(other, headers={"If-None-Match": client.get(path).headers["ETag"]})
    assert response.status_code == 200


def test_if_modified_since(client: Any, path: str) -> None:
    last_modified = client.get(path).headers["Last-Modified"]
    assert client.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
    later = format_datetime(parsedate_to_datetime(last_modified) + timedelta(days=1), usegmt=True)
    assert client.get(path, headers={"If-Modified-Since": later}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(days=1), usegmt=True)
    response = client.get(path, headers={"If-Modified-Since": earlier})
    assert response.status_code == 200
    assert response.data == DATA
    assert client.get(path, headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_if_range_with_the_current_etag_honours_the_range(client: Any, path: str) -> None:
    etag = client.get(path).headers["ETag"]
    response = client.get(path, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert response.status_code == 206
    assert response.data == DATA[:10]


def test_if_range_with_an_old_etag_gives_the_whole_file(client: Any, path: str) -> None:
    response = client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert response.status_code == 200
    assert response.data == DATA


def test_if_range_with_dates(client: Any, path: str) -> None:
    last_modified = client.get(path).headers["Last-Modified"]
    response = client.get(path, headers={"Range": "bytes=5-9", "If-Range": last_modified})
    assert response.status_code == 206
    assert response.data == DATA[5:10]
    earlier = format_datetime(parsedate_to_datetime(last_modified) - timedelta(days=1), usegmt=True)
    response = client.get(path, headers={"Range": "bytes=5-9", "If-Range": earlier})
    assert response.status_code == 200
    assert response.data == DATA


# --- plain HEAD -------------------------------------------------------------------------------


def test_plain_head_gives_the_download_headers(client: Any, path: str) -> None:
    get = client.get(path)
    response = client.head(path)
    assert response.status_code == 200
    assert response.data == b""
    for name in ("Content-Length", "ETag", "Last-Modified", "Accept-Ranges", "Content-Type"):
        assert response.headers[name] == get.headers[name], name
    assert response.headers["Content-Length"] == str(SIZE)
    assert "Upload-Offset" not in response.headers


def test_plain_head_with_range(client: Any, path: str) -> None:
    response = client.head(path, headers={"Range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 10-19/{SIZE}"
    assert response.headers["Content-Length"] == "10"
    assert response.data == b""


def test_plain_head_of_an_unknown_upload_is_404(client: Any) -> None:
    assert client.head(f"/files/{ABSENT}").status_code == 404


# --- content type and disposition -------------------------------------------------------------


@pytest.mark.parametrize(
    "filetype", ["image/png", "text/plain", "video/mp4", "image/jpeg", "audio/mpeg"]
)
def test_safe_types_are_inline(client: Any, filetype: str) -> None:
    path = complete(client, b"data", filename="file.bin", filetype=filetype)
    response = client.get(path)
    assert response.headers["Content-Type"].split(";")[0] == filetype
    assert response.headers["Content-Disposition"].startswith("inline")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "filetype",
    [
        "text/html",
        "image/svg+xml",
        "application/javascript",
        "text/javascript",
        "application/xhtml+xml",
        "application/x-unknown-thing",
        "application/pdf",
    ],
)
def test_active_and_unknown_types_are_octet_stream_attachments(client: Any, filetype: str) -> None:
    path = complete(client, b"<script>alert(1)</script>", filename="x", filetype=filetype)
    response = client.get(path)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    head = client.head(path)
    assert head.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_type_is_guessed_from_the_name_when_not_given(client: Any) -> None:
    png = complete(client, b"\x89PNG", filename="picture.png")
    response = client.get(png)
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("inline")
    html = complete(client, b"<html>", filename="page.html")
    response = client.get(html)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")


def test_malformed_filetype_falls_back(client: Any) -> None:
    path = complete(client, b"x", filename="a.txt", filetype="not a type\r\nX-Evil: 1")
    response = client.get(path)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "X-Evil" not in response.headers


def test_no_name_no_type_is_an_octet_stream_attachment(client: Any) -> None:
    response = client.get(complete(client, b"x"))
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment"


def test_ascii_filename(client: Any) -> None:
    path = complete(client, b"x", filename="report 2024.pdf", filetype="application/pdf")
    response = client.get(path)
    assert response.headers["Content-Disposition"] == 'attachment; filename="report 2024.pdf"'


def test_non_ascii_filename_has_filename_star_and_ascii_fallback(client: Any) -> None:
    path = complete(client, b"x", filename="Résumé 日本.txt", filetype="text/plain")
    disposition = client.get(path).headers["Content-Disposition"]
    assert disposition.startswith("inline; ")
    params = dict(part.strip().split("=", 1) for part in disposition.split(";")[1:] if "=" in part)
    fallback = params["filename"].strip('"')
    assert fallback.isascii()
    assert fallback.startswith("Resume")
    assert fallback.endswith(".txt")
    assert params["filename*"].startswith("UTF-8''")
    assert unquote(params["filename*"][len("UTF-8''") :]) == "Résumé 日本.txt"


def test_quotes_and_slashes_in_filename_are_neutralised(client: Any) -> None:
    path = complete(client, b"x", filename='a"b/../c\\d.txt')
    disposition = client.get(path).headers["Content-Disposition"]
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert "/" not in fallback and "\\" not in fallback
    assert disposition.count('"') == 2


def test_rename_changes_the_download_name(client: Any) -> None:
    path = complete(client, b"x", filename="old.txt")
    upload = path.rsplit("/", 1)[-1]
    assert client.patch(f"/api/uploads/{upload}", json={"filename": "new.txt"}).status_code == 200
    assert 'filename="new.txt"' in client.get(path).headers["Content-Disposition"]
