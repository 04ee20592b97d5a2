"""The download view's header helpers: media type, inline safety, Content-Disposition."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from tusserver.views.download import content_disposition, is_inline_safe, media_type


def params(header: str) -> dict[str, str]:
    """The parameters of a Content-Disposition value (no `;` inside values in these tests)."""
    result = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        result[name] = value
    return result


# --- media_type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "filename", "expected"),
    [
        ("image/png", "", "image/png"),
        ("IMAGE/PNG", "", "image/png"),
        ("text/plain; charset=utf-8", "", "text/plain"),
        (" text/html ", "", "text/html"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "", None),
        ("", "photo.jpg", "image/jpeg"),
        ("", "notes.txt", "text/plain"),
        ("", "page.html", "text/html"),
        ("", "archive.unknownext", "application/octet-stream"),
        ("", "", "application/octet-stream"),
        ("not a type", "a.png", "image/png"),
        ("text/plain\r\nX-Evil: 1", "", "application/octet-stream"),
        ("text/", "", "application/octet-stream"),
        ("/plain", "", "application/octet-stream"),
        ("text/pl ain", "", "application/octet-stream"),
        ("tëxt/plain", "", "application/octet-stream"),
        ("a" * 100 + "/b", "", "application/octet-stream"),
    ],
)
def test_media_type(claimed: str, filename: str, expected: str | None) -> None:
    result = media_type(claimed, filename)
    assert result == (expected or claimed)
    assert result.isascii()
    assert "\r" not in result and "\n" not in result


# --- is_inline_safe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "video/mp4", "audio/ogg"],
)
def test_inline_safe(content_type: str) -> None:
    assert is_inline_safe(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "image/svg+xml",
        "application/javascript",
        "text/javascript",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/pdf",
        "application/octet-stream",
        "text/css",
        "multipart/x-mixed-replace",
        "image/x-icon",
        "",
    ],
)
def test_not_inline_safe(content_type: str) -> None:
    assert not is_inline_safe(content_type)


# --- content_disposition ----------------------------------------------------------------------


def test_no_filename() -> None:
    assert content_disposition("attachment", "") == "attachment"
    assert content_disposition("inline", "") == "inline"


def test_plain_ascii_filename_has_no_filename_star() -> None:
    assert content_disposition("inline", "report.pdf") == 'inline; filename="report.pdf"'


def test_non_ascii_filename() -> None:
    header = content_disposition("attachment", "Ünïcödé 文件.txt")
    values = params(header)
    assert header.startswith("attachment; ")
    assert values["filename"] == '"Unicode .txt"'
    assert values["filename*"] == "UTF-8''" + "%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%E6%96%87%E4%BB%B6.txt"
    assert unquote(values["filename*"][7:]) == "Ünïcödé 文件.txt"
    assert header.isascii()


def test_filename_of_only_non_ascii_gets_a_fallback() -> None:
    values = params(content_disposition("attachment", "文件"))
    assert values["filename"] == '"download"'
    assert unquote(values["filename*"][7:]) == "文件"


def test_quotes_backslashes_and_slashes() -> None:
    header = content_disposition("attachment", 'a"b\\c/d.txt')
    values = params(header)
    assert values["filename"] == '"a\'b_c_d.txt"'
    assert unquote(values["filename*"][7:]) == 'a"b_c_d.txt'


@pytest.mark.parametrize("name", ["a\r\nSet-Cookie: x=1.txt", "tab\there", "nul\x00", "\x85x"])
def test_control_characters_are_dropped(name: str) -> None:
    header = content_disposition("attachment", name)
    assert header.isprintable()
    assert "\r" not in header and "\n" not in header


def test_a_name_of_only_control_characters() -> None:
    assert content_disposition("attachment", "\r\n") == 'attachment; filename="download"'


def test_semicolons_and_equals_stay_inside_the_quotes() -> None:
    header = content_disposition("attachment", "a; filename=evil.html")
    assert header == 'attachment; filename="a; filename=evil.html"'
