"""Client values made safe to write into a log line.

A log line is one record only while nothing a client sent can end it: Flask hands views the
percent-decoded path, so `GET /files/%0a127.0.0.1 GET /admin 200` would otherwise print a second,
forged line. Every value that came from a client goes through `escape()` before it is logged.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators some log viewers honour;
# the backslash too, so an escaped `\n` cannot be confused with a client's literal "\n".
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
MAX_LOGGED = 2048
"""Longest client value logged, in characters; a 64 KiB path must not become a 64 KiB line."""


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(value: object, limit: int = MAX_LOGGED) -> str:
    """`value` as one line of printable text: controls become `\\xNN`, long values are cut."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(_escaped, text)
