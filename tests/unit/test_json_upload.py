"""The streaming JSON upload reader against the standard library, on arbitrary cuts of the body.

However the body is cut into reads (one byte at a time, or mid-escape, mid-surrogate-pair,
mid-UTF-8 character), the reader must hand out exactly what `json.loads` plus `base64` would,
and refuse exactly what they refuse.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tusserver.errors import BadRequest, TooLarge
from tusserver.json_upload import JsonUploadReader


def cut(document: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at = [], 0
    for size in sizes:
        if at >= len(document):
            break
        pieces.append(document[at : at + size])
        at += size
    if at < len(document):
        pieces.append(document[at:])
    return pieces


def read_all(pieces: list[bytes], limit: int = 1 << 20) -> tuple[bytes, dict]:
    reader = JsonUploadReader(pieces, decoded_limit=limit)
    content = b"".join(reader.content())
    return content, reader.finish().values


RFC4648 = re.compile(r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}(==)?|[A-Za-z0-9+/]{3}=?)?")
SIZES = st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600), sizes=SIZES, content_first=st.booleans())
def test_base64_in_any_cut(data: bytes, sizes: list[int], content_first: bool) -> None:
    members = {"filename": "f.bin", "content_base64": base64.b64encode(data).decode()}
    if content_first:
        members = dict(reversed(list(members.items())))
    content, values = read_all(cut(json.dumps(members).encode(), sizes))
    assert content == data
    assert values == {"filename": "f.bin"}


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300), sizes=SIZES, ascii_only=st.booleans())
def test_text_in_any_cut(text: str, sizes: list[int], ascii_only: bool) -> None:
    document = json.dumps({"text": text, "filename": "t"}, ensure_ascii=ascii_only).encode()
    content, values = read_all(cut(document, sizes))
    assert content == text.encode()
    assert values == {"filename": "t"}


@settings(max_examples=150, deadline=None)
@given(encoded=st.text(alphabet="ABCDab01+/=", max_size=40), sizes=SIZES)
@example(encoded="AB=", sizes=[1]).via("padding left unfinished")
@example(encoded="QQ==QUJD", sizes=[9]).via("data after the padding")
@example(encoded="QU=J", sizes=[3]).via("padding inside a quantum")
@example(encoded="AAAA=", sizes=[5]).via("padding after a complete quantum")
def test_base64_refused_exactly_when_the_standard_library_refuses(
    encoded: str, sizes: list[int]
) -> None:
    """Standard base64 (RFC 4648), its final padding optional, is taken; anything else is a 400
    (binascii's strict mode alone would also take a stray "=" after a complete quantum)."""
    expected: bytes | None = None
    if RFC4648.fullmatch(encoded):
        padded = encoded + "=" * (-len(encoded) % 4)
        expected = binascii.a2b_base64(padded.encode(), strict_mode=True)
    document = json.dumps({"filename": "f", "content_base64": encoded}).encode()
    if expected is None:
        with pytest.raises(BadRequest):
            read_all(cut(document, sizes))
    else:
        assert read_all(cut(document, sizes))[0] == expected


def test_the_decoded_limit_is_a_413_as_soon_as_it_is_passed() -> None:
    document = json.dumps({"filename": "f", "text": "x" * 5000}).encode()
    reader = JsonUploadReader(cut(document, [100] * 100), decoded_limit=1000)
    with pytest.raises(TooLarge):
        for _ in reader.content():
            pass


def test_a_body_longer_than_the_raw_limit_is_a_413_while_reading() -> None:
    document = json.dumps({"filename": "f", "text": "x" * 5000}).encode()
    reader = JsonUploadReader(cut(document, [100] * 100), decoded_limit=10_000, raw_limit=1000)
    with pytest.raises(TooLarge):
        for _ in reader.content():
            pass
