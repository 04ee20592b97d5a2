"""Client values in logs: one record stays one line, whatever the client sent."""

from __future__ import annotations

import pytest

from tusserver.logsafe import MAX_LOGGED, escape


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("/files/abc", "/files/abc"),
        ("/files/a\nb", "/files/a\\x0ab"),
        ("/x\r\n127.0.0.1 GET /admin 200", "/x\\x0d\\x0a127.0.0.1 GET /admin 200"),
        ("tab\there", "tab\\x09here"),
        ("esc\x1b[31mred", "esc\\x1b[31mred"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("sep\u2028par\u2029", "sep\\u2028par\\u2029"),
        ("back\\x0a", "back\\\\x0a"),
        ("naïve ünïcode 文件", "naïve ünïcode 文件"),
    ],
)
def test_controls_are_escaped_and_printable_text_kept(raw: str, logged: str) -> None:
    assert escape(raw) == logged


def test_no_escaped_value_contains_a_line_break() -> None:
    every_code_point_below_0x3000 = "".join(chr(c) for c in range(0x3000))
    escaped = escape(every_code_point_below_0x3000, limit=10**6)
    assert escaped.splitlines() == [escaped]


def test_long_values_are_cut() -> None:
    assert escape("a" * (MAX_LOGGED + 500)) == "a" * MAX_LOGGED + "..."


def test_non_strings_are_logged_as_text() -> None:
    assert escape(None) == "None"
    assert escape(42) == "42"
