"""Streaming reader of a JSON upload body: `{"filename", "content_base64" | "text", ...}`.

`POST /api/files` carries a whole file inside one JSON string. Parsing the document first and
decoding the string afterwards would hold the body in memory two or three times over (bytes,
then the string, then the decoded file), and neither `json`, `ijson` nor `json-stream` hands
out a string value in pieces. So this reader walks the top-level object itself and:

- decodes the content string as it arrives, one bounded piece at a time: the JSON escapes with
  `json.loads` on each piece (cut only between escapes; a surrogate pair split across two
  pieces is carried over), then base64 with `binascii` on 4-character-aligned runs (or UTF-8
  for `text`), handing each decoded chunk to the caller, who writes it to the data store;
- reads every other member (small values) with the standard decoder, bounded in size.

Memory stays at a few read chunks whatever the file size. Limits: the raw body may not exceed
`raw_limit` (413 as soon as it does) and the decoded content may not exceed `decoded_limit`
(413 as soon as it does). Anything malformed is a 400 naming what is wrong.
"""

from __future__ import annotations

import binascii
import codecs
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest, TooLarge

READ_CHUNK = 64 * 1024
SMALL_VALUE_MAX = 64 * 1024
"""Largest raw JSON text of a member other than the content (a file name, tags...)."""
RAW_OVERHEAD = 64 * 1024
"""Room in the raw body for the other members and whitespace, beyond the encoded content."""
CONTENT_KEYS = ("content_base64", "text")
FIELD_KEYS = ("filename", "filetype", "tags", "previous")

_WHITESPACE = " \t\r\n"
_BASE64_SPACE = str.maketrans("", "", " \t\r\n")
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DECODER = json.JSONDecoder()


def raw_limit_for(decoded_limit: int) -> int:
    """The largest request body worth reading: base64 of `decoded_limit` bytes plus room for the
    other members. A larger Content-Length is refused before a byte is read."""
    return 4 * -(-decoded_limit // 3) + RAW_OVERHEAD


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"a JSON upload holds at most {limit} bytes (after decoding); "
        "upload larger files with tus (POST /files/)"
    )


@dataclass
class FileFields:
    """The members of the body other than the content, as given (checked by the caller)."""

    values: dict[str, Any] = field(default_factory=dict)
    content_kind: str | None = None
    """Which content member the body had: "content_base64" or "text"."""


class JsonUploadReader:
    """Reads one JSON upload body from `raw` (the request body's chunks), in one pass.

    Use: iterate `content()` to the end (the decoded file, in chunks), then call `finish()` for
    the other members. The content may come before or after them in the document.
    """

    def __init__(self, raw: Iterable[bytes], decoded_limit: int, raw_limit: int | None = None):
        self._raw = iter(raw)
        self.decoded_limit = decoded_limit
        self.raw_limit = raw_limit if raw_limit is not None else raw_limit_for(decoded_limit)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._raw_seen = 0
        self._started = False
        self._after_content = False
        self.fields = FileFields()
        self.decoded = 0
        """Decoded content bytes handed out so far."""

    # -- the public steps ------------------------------------------------------------------
    def content(self) -> Iterator[bytes]:
        """The decoded content, in chunks; stops at the end of the content string (or of the
        document, if it has none)."""
        if not self._started:
            self._started = True
            self._skip_space()
            self._expect("{")
            self._skip_space()
            if self._peek() == "}":
                self._pos += 1
                self._after_content = True
                return
        else:
            return
        while True:
            key = self._member_key()
            if key in CONTENT_KEYS:
                if self.fields.content_kind is not None:
                    raise BadRequest("give the content once: content_base64 or text")
                self.fields.content_kind = key
                yield from self._content_string(key)
                self._after_content = not self._member_end()
                return
            self._small_member(key)
            if not self._member_end():
                self._after_content = True
                return

    def finish(self) -> FileFields:
        """Read the members after the content and the end of the document."""
        for _ in self.content():  # a caller that did not drain it: read (and drop) the rest
            pass
        while not self._after_content:
            key = self._member_key()
            if key in CONTENT_KEYS:
                raise BadRequest("give the content once: content_base64 or text")
            self._small_member(key)
            self._after_content = not self._member_end()
        self._skip_space()
        if self._peek() is not None:
            raise BadRequest("unexpected data after the JSON object")
        if self.fields.content_kind is None:
            raise BadRequest('the file needs its content: "content_base64" or "text"')
        return self.fields

    # -- members ---------------------------------------------------------------------------
    def _member_key(self) -> str:
        self._skip_space()
        if self._peek() != '"':
            raise BadRequest("expected a member name (a JSON string)")
        key = self._small_value()
        self._skip_space()
        self._expect(":")
        self._skip_space()
        if key not in CONTENT_KEYS and key not in FIELD_KEYS:
            known = ", ".join((*CONTENT_KEYS, *FIELD_KEYS))
            raise BadRequest(f"unknown member {str(key)[:40]!r}: the members are {known}")
        if key in self.fields.values:
            raise BadRequest(f"{key} is given twice")
        return key

    def _small_member(self, key: str) -> None:
        self.fields.values[key] = self._small_value()

    def _member_end(self) -> bool:
        """After a value: True if another member follows (a comma), False at the closing brace."""
        self._skip_space()
        ch = self._peek()
        self._pos += 1
        if ch == ",":
            return True
        if ch == "}":
            return False
        raise BadRequest("expected ',' or '}' after a member of the JSON object")

    def _small_value(self) -> Any:
        """One bounded JSON value, parsed by the standard decoder."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except (ValueError, RecursionError):
                value, end = None, -1
            # A value that ends exactly at the end of the buffer may go on (a number's digits).
            if end != -1 and (end < len(self._buf) or self._eof):
                _check_scalar_text(value)
                self._pos = end
                return value
            if self._eof:
                raise BadRequest("the JSON body is malformed or cut short")
            if len(self._buf) - self._pos > SMALL_VALUE_MAX:
                raise BadRequest(f"a member besides the content is above {SMALL_VALUE_MAX} bytes")
            self._fill()

    # -- the content string ----------------------------------------------------------------
    def _content_string(self, kind: str) -> Iterator[bytes]:
        if self._peek() != '"':
            raise BadRequest(f"{kind} must be a string")
        self._pos += 1
        decode = _Base64Decoder() if kind == "content_base64" else _TextEncoder()
        pending = ""  # a high surrogate whose low half is in the next piece
        while True:
            buf, pos = self._buf, self._pos
            end, closed = _string_run(buf, pos)
            segment = buf[pos:end]
            if "\\" in segment:
                try:  # the escapes, at C speed (raw control characters pass, as strict=False)
                    piece = json.loads(f'"{segment}"', strict=False)
                except ValueError:
                    raise BadRequest(f"{kind} holds an invalid escape") from None
            else:
                piece = segment  # the usual case: base64 never needs an escape
            self._pos = end
            if piece:
                if pending:  # join the pair: its halves were decoded apart
                    pair = (pending + piece[:1]).encode("utf-16-le", "surrogatepass")
                    piece = pair.decode("utf-16-le", "surrogatepass") + piece[1:]
                    pending = ""
                if not closed and "\ud800" <= piece[-1] <= "\udbff":
                    piece, pending = piece[:-1], piece[-1]
                yield from self._counted(decode.feed(piece, kind))
            if closed:
                if pending:
                    yield from self._counted(decode.feed(pending, kind))  # lone surrogate: 400
                self._pos += 1
                yield from self._counted(decode.end(kind))
                return
            if self._eof:
                raise BadRequest(f"the body ends inside {kind}")
            self._fill()

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.decoded += len(chunk)
            if self.decoded > self.decoded_limit:
                raise too_large(self.decoded_limit)
            yield chunk

    # -- the character buffer --------------------------------------------------------------
    def _fill(self) -> bool:
        """Read more of the body into the buffer; False at its end."""
        if self._eof:
            return False
        if self._pos:
            self._buf = self._buf[self._pos :]
            self._pos = 0
        raw = next(self._raw, b"")
        if not raw:
            self._eof = True
            try:
                self._buf += self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                raise BadRequest("the body is not UTF-8") from None
            return False
        self._raw_seen += len(raw)
        if self._raw_seen > self.raw_limit:
            raise too_large(self.decoded_limit)
        try:
            self._buf += self._utf8.decode(raw)
        except UnicodeDecodeError:
            raise BadRequest("the body is not UTF-8") from None
        return True

    def _peek(self) -> str | None:
        while self._pos >= len(self._buf):
            if not self._fill():
                return None
        return self._buf[self._pos]

    def _skip_space(self) -> None:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._pos += 1
            if self._pos < len(self._buf) or not self._fill():
                return

    def _expect(self, ch: str) -> None:
        if self._peek() != ch:
            raise BadRequest(f"expected {ch!r}: the body must be a JSON object")
        self._pos += 1


class _Base64Decoder:
    """Standard base64 (whitespace ignored, padding only at the very end), in aligned runs."""

    def __init__(self) -> None:
        self.carry = ""
        self.padded = False

    def feed(self, text: str, kind: str) -> Iterator[bytes]:
        if " " in text or "\n" in text or "\r" in text or "\t" in text:
            text = text.translate(_BASE64_SPACE)
        text = self.carry + text
        usable = len(text) - len(text) % 4
        self.carry = text[usable:]
        if usable:
            yield self._decode(text[:usable], kind)

    def end(self, kind: str) -> Iterator[bytes]:
        if self.carry:
            if len(self.carry) == 1 or "=" in self.carry:  # "A", or a padding left unfinished
                raise BadRequest(f"{kind} is not valid base64 (its length is wrong)")
            yield self._decode(self.carry + "=" * (4 - len(self.carry)), kind)
            self.carry = ""

    def _decode(self, text: str, kind: str) -> bytes:
        if self.padded:
            raise BadRequest(f"{kind} is not valid base64 (data after the padding)")
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise BadRequest(f"{kind} is not valid base64") from None
        # Checked here, then decoded leniently: bytes.translate finds any character outside
        # the alphabet faster than binascii's strict mode does (which halves the throughput).
        data = raw.rstrip(b"=")
        if len(raw) - len(data) > 2 or data.translate(None, _BASE64_ALPHABET):
            raise BadRequest(f"{kind} is not valid base64")
        try:
            decoded = binascii.a2b_base64(raw)
        except binascii.Error:
            raise BadRequest(f"{kind} is not valid base64") from None
        self.padded = len(data) < len(raw)
        return decoded


class _TextEncoder:
    """`text`: the characters as UTF-8 (lone surrogates refused)."""

    def feed(self, text: str, kind: str) -> Iterator[bytes]:
        try:
            yield text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"{kind} must be valid Unicode text (no lone surrogates)") from None

    def end(self, kind: str) -> Iterator[bytes]:
        return iter(())


def _string_run(buf: str, pos: int) -> tuple[int, bool]:
    """Where the JSON string body starting at `pos` ends in `buf`: (end, closed).

    Closed: `end` is its closing quote (one not escaped: preceded by an even number of
    backslashes). Not closed: `end` is where the buffer can be cut without splitting an escape
    (before a trailing backslash whose escape is not complete yet). Only str.find and a few
    character looks: no per-character Python loop.
    """
    quote = buf.find('"', pos)
    while quote != -1:
        if _backslashes_before(buf, pos, quote) % 2 == 0:
            return quote, True
        quote = buf.find('"', quote + 1)
    end = len(buf)
    tail = buf.rfind("\\", max(pos, end - 6))
    while tail != -1:
        if _backslashes_before(buf, pos, tail) % 2 == 0:  # this backslash starts an escape
            needs = 6 if buf[tail + 1 : tail + 2] == "u" else 2
            return (tail, False) if end - tail < needs else (end, False)
        tail = buf.rfind("\\", max(pos, end - 6), tail)
    return end, False


def _backslashes_before(buf: str, start: int, index: int) -> int:
    count = 0
    while index - count > start and buf[index - count - 1] == "\\":
        count += 1
    return count


def _check_scalar_text(value: Any) -> None:
    """Strings anywhere in a small value must be Unicode scalar values (no lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("text must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, list):
        for item in value:
            _check_scalar_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_scalar_text(key)
            _check_scalar_text(item)
