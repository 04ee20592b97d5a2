"""Unit tests of the tus 1.0.0 header codec, `tusserver.protocol`: valid and malformed inputs."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from tusserver import protocol
from tusserver.errors import (
    HeaderTooLarge,
    InvalidConcat,
    InvalidHeader,
    InvalidMetadata,
    PreconditionFailed,
    UnsupportedChecksumAlgorithm,
)
from tusserver.protocol import (
    Checksum,
    ConcatRequest,
    check_tus_resumable,
    encode_metadata,
    format_concat,
    http_date,
    is_upload_id,
    parse_checksum,
    parse_concat,
    parse_defer_length,
    parse_length,
    parse_metadata,
    parse_metadata_values,
    safe_header_value,
    upload_id_from_url,
)

ID = "0123456789abcdef0123456789abcdef"
ID2 = "fedcba9876543210fedcba9876543210"


def b64(data: bytes | str) -> str:
    """Standard base64 of bytes, or of a string's UTF-8 encoding."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


# The digests of the empty string, in the form clients send them.
SHA1_EMPTY = "2jmj7l5rSw0yVb/vlWAYkK/YBwk="
SHA256_EMPTY = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
MD5_EMPTY = "1B2M2Y8AsgTpgAmY7PhCfg=="


# --- constants ---------------------------------------------------------------------------------


def test_constants() -> None:
    assert protocol.TUS_VERSION == "1.0.0"
    assert protocol.SUPPORTED_VERSIONS == ("1.0.0",)
    assert protocol.CHECKSUM_ALGORITHMS == ("sha1", "sha256", "md5")
    assert protocol.OFFSET_CONTENT_TYPE == "application/offset+octet-stream"
    assert protocol.MAX_INT == 9223372036854775807


# --- Tus-Resumable -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.0.0", " 1.0.0", "1.0.0\t"])
def test_check_tus_resumable_accepts_supported_version(value: str) -> None:
    assert check_tus_resumable(value) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        " ",
        "1.0",
        "1",
        "0.2.2",
        "1.0.1",
        "2.0.0",
        "v1.0.0",
        "1.0.0,0.2.2",
        "1.0.0\r\nX: y",
    ],
)
def test_check_tus_resumable_rejects_missing_or_unsupported(value: str | None) -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_tus_resumable(value)
    err = info.value
    assert err.status == 412
    assert err.code == "unsupported-version"
    assert err.headers == {"Tus-Version": "1.0.0"}
    assert "Tus-Resumable" in err.message
    assert "\r" not in err.message and "\n" not in err.message


def test_check_tus_resumable_message_shows_rejected_version() -> None:
    with pytest.raises(PreconditionFailed) as info:
        check_tus_resumable("0.2.2")
    assert "'0.2.2'" in info.value.message
    assert "1.0.0" in info.value.message


# --- Upload-Length / Upload-Offset / Content-Length -------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("42", 42),
        ("007", 7),
        ("000", 0),
        (" 42", 42),
        ("42 ", 42),
        ("\t42\t", 42),
        (" \t 42 \t ", 42),
        ("1073741824", 2**30),
        ("9223372036854775807", 2**63 - 1),
        ("0000000000000000001", 1),  # 19 digits, leading zeros
    ],
)
def test_parse_length_valid(value: str, expected: int) -> None:
    assert parse_length("Upload-Length", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "\t",
        "-1",
        "-0",
        "+1",
        "1.0",
        "1.",
        ".5",
        "1e3",
        "1E3",
        "1_000",
        "1,000",
        "0x10",
        "0b1",
        "0o7",
        "inf",
        "nan",
        "abc",
        "12 34",
        "12\t34",
        "١٢٣",  # Arabic-Indic digits: int() accepts them
        "\uff11\uff12",  # full-width digits
        "²",  # superscript two: str.isdigit() accepts it
        "9223372036854775808",  # MAX_INT + 1
        "9999999999999999999",  # 19 digits, > MAX_INT
        "10000000000000000000",  # 20 digits
        "00000000000000000001",  # 20 digits even though the value is small
        "1" * 100,
        "\n42",
        "42\n",
        "42\r\n",
        "\x0042",
        "\u00a042",  # non-breaking space is not HTTP whitespace
    ],
)
def test_parse_length_malformed(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_length("Upload-Length", value)
    err = info.value
    assert err.status == 400
    assert err.code == "invalid-header"
    assert err.message == "Upload-Length must be a non-negative integer"


@pytest.mark.parametrize("name", ["Upload-Offset", "Content-Length"])
def test_parse_length_message_names_the_given_header(name: str) -> None:
    assert parse_length(name, "5") == 5
    with pytest.raises(InvalidHeader) as info:
        parse_length(name, "-5")
    assert info.value.message == f"{name} must be a non-negative integer"


# --- Upload-Defer-Length -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", " 1", "1\t"])
def test_parse_defer_length_valid(value: str) -> None:
    assert parse_defer_length(value) is True


@pytest.mark.parametrize(
    "value",
    ["", " ", "0", "01", "1.0", "2", "-1", "+1", "true", "yes", "\uff11", "1 1", "1,1", "\n1"],
)
def test_parse_defer_length_malformed(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_defer_length(value)
    assert info.value.status == 400
    assert "Upload-Defer-Length" in info.value.message


# --- Upload-Checksum ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "algorithm", "digest"),
    [
        (f"sha1 {SHA1_EMPTY}", "sha1", hashlib.sha1(b"").digest()),
        (f"sha256 {SHA256_EMPTY}", "sha256", hashlib.sha256(b"").digest()),
        (f"md5 {MD5_EMPTY}", "md5", hashlib.md5(b"").digest()),
        (f" sha1 {SHA1_EMPTY} ", "sha1", hashlib.sha1(b"").digest()),
        (f"SHA1 {SHA1_EMPTY}", "sha1", hashlib.sha1(b"").digest()),  # normalised to lower case
        (f"Sha256 {SHA256_EMPTY}", "sha256", hashlib.sha256(b"").digest()),
        (f"sha1 {b64(hashlib.sha1(b'hello').digest())}", "sha1", hashlib.sha1(b"hello").digest()),
    ],
)
def test_parse_checksum_valid(value: str, algorithm: str, digest: bytes) -> None:
    assert parse_checksum(value) == Checksum(algorithm, digest)


def test_checksum_digests_are_the_known_values() -> None:
    assert parse_checksum(f"sha1 {SHA1_EMPTY}").digest.hex() == (
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    )
    assert parse_checksum(f"md5 {MD5_EMPTY}").digest.hex() == "d41d8cd98f00b204e9800998ecf8427e"
    assert parse_checksum(f"sha256 {SHA256_EMPTY}").digest.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_hasher_is_fresh_and_matches_algorithm(algorithm: str) -> None:
    checksum = Checksum(algorithm, b"")
    first = checksum.hasher()
    first.update(b"hello")
    second = checksum.hasher()
    assert second is not first
    assert second.name == algorithm
    assert second.digest() == hashlib.new(algorithm, b"").digest()
    assert first.digest() == hashlib.new(algorithm, b"hello").digest()


def test_checksum_is_frozen() -> None:
    checksum = parse_checksum(f"md5 {MD5_EMPTY}")
    with pytest.raises(AttributeError):
        checksum.algorithm = "sha1"  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [
        f"crc32 {b64(b'1234')}",
        f"sha512 {b64(hashlib.sha512(b'').digest())}",
        f"sha224 {b64(hashlib.sha224(b'').digest())}",
        f"blake2b {SHA256_EMPTY}",
        f"sha-1 {SHA1_EMPTY}",
        f"md4 {MD5_EMPTY}",
        "crc32 !!!",  # the algorithm is checked before the digest
    ],
)
def test_parse_checksum_unknown_algorithm(value: str) -> None:
    with pytest.raises(UnsupportedChecksumAlgorithm) as info:
        parse_checksum(value)
    err = info.value
    assert err.status == 400
    assert err.code == "unsupported-checksum-algorithm"
    assert "Upload-Checksum" in err.message
    assert repr(value.split(" ")[0]) in err.message
    assert "sha1, sha256, md5" in err.message


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "sha1",  # no space, no digest
        SHA1_EMPTY,  # digest only
        f"sha1  {SHA1_EMPTY}",  # two spaces
        f"sha1\t{SHA1_EMPTY}",  # tab instead of space
        f"sha1 {SHA1_EMPTY} extra",
        f"sha1 {SHA1_EMPTY} {SHA1_EMPTY}",
        f"sha1:{SHA1_EMPTY}",
        f"sha1={SHA1_EMPTY}",
        f" {SHA1_EMPTY}",
        f"sha1,md5 {SHA1_EMPTY}",
        f"shá1 {SHA1_EMPTY}",
    ],
)
def test_parse_checksum_bad_grammar(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_checksum(value)
    err = info.value
    assert type(err) is InvalidHeader
    assert err.status == 400
    assert "Upload-Checksum" in err.message


@pytest.mark.parametrize(
    "value",
    [
        "sha1 !!!!",
        f"sha1 {SHA1_EMPTY.rstrip('=')}",  # missing padding
        f"sha1 {SHA1_EMPTY}=",  # excess padding
        f"md5 {MD5_EMPTY[:-1]}",  # one '=' short
        "sha1 2jmj7l5rSw0yVb_vlWAYkK_YBwk=",  # base64url alphabet
        "sha256 47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=",
        "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwl=",  # non-canonical: non-zero unused bits
        "sha1 2jmj7l5r\x00w0yVb/vlWAYkK/YBwk=",
        "sha1 2jmj7l5rSw0yVb/v=lWAYkK/YBwk",
        "sha1 =",
        "md5 é",
    ],
)
def test_parse_checksum_bad_base64(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_checksum(value)
    err = info.value
    assert type(err) is InvalidHeader
    assert err.status == 400
    assert err.message == "Upload-Checksum digest is not valid base64"


@pytest.mark.parametrize(
    ("value", "expected", "got"),
    [
        (f"sha1 {SHA256_EMPTY}", 20, 32),
        (f"sha1 {MD5_EMPTY}", 20, 16),
        (f"sha256 {SHA1_EMPTY}", 32, 20),
        (f"md5 {SHA1_EMPTY}", 16, 20),
        (f"md5 {b64(b'x' * 15)}", 16, 15),
        (f"md5 {b64(b'x' * 17)}", 16, 17),
        (f"sha256 {b64(b'x' * 33)}", 32, 33),
        ("sha1 AA==", 20, 1),
    ],
)
def test_parse_checksum_wrong_digest_length(value: str, expected: int, got: int) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_checksum(value)
    err = info.value
    assert err.status == 400
    assert "Upload-Checksum" in err.message
    assert f"must be {expected} bytes, got {got}" in err.message


# --- Upload-Metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("   ", {}),
        (" \t ", {}),
        (
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==",
            {"filename": "world_domination_plan.pdf"},
        ),
        (
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
            {"filename": "world_domination_plan.pdf", "is_confidential": ""},
        ),
        ("a YQ==,b Yg==", {"a": "a", "b": "b"}),
        (" a YQ== , b Yg== ", {"a": "a", "b": "b"}),
        ("\ta YQ==\t,\tb Yg==\t", {"a": "a", "b": "b"}),
        ("key", {"key": ""}),
        ("key ", {"key": ""}),  # the separating space may be kept even when the value is empty
        ("a,b,c", {"a": "", "b": "", "c": ""}),
        ("name 8J+YgA==", {"name": "\U0001f600"}),
        (f"name {b64('Grüße, 世界')}", {"name": "Grüße, 世界"}),
        (f"name {b64('a b,c')}", {"name": "a b,c"}),
        ("k " + b64("line1\nline2"), {"k": "line1\nline2"}),
        ("k YWI=", {"k": "ab"}),
        ("k YWJj", {"k": "abc"}),
        ("k+/= YQ==", {"k+/=": "a"}),
        ("!#$%&'()*+-./:;<=>?@[]^_`{|}~ YQ==", {"!#$%&'()*+-./:;<=>?@[]^_`{|}~": "a"}),
        ("A YQ==,a Yg==", {"A": "a", "a": "b"}),  # keys are case-sensitive
    ],
)
def test_parse_metadata_valid(value: str, expected: dict[str, str]) -> None:
    assert parse_metadata(value) == expected


def test_parse_metadata_keeps_order() -> None:
    assert list(parse_metadata("z,a YQ==,m")) == ["z", "a", "m"]


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x80", bytes(range(256))],
    ids=["bom", "truncated", "surrogate", "continuation", "all-bytes"],
)
def test_binary_metadata_is_kept_as_sent(raw: bytes) -> None:
    header = f"name {b64('x')},blob {b64(raw)},empty"
    text, binary = parse_metadata_values(header)
    assert binary == {"blob": b64(raw)}
    assert text["blob"] == raw.decode("utf-8", errors="replace")
    assert "\ufffd" in text["blob"]
    assert parse_metadata(header) == text
    assert encode_metadata(text, binary) == header


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("a YQ", "a"),  # missing padding
        ("a Y===", "a"),
        ("a Y", "a"),
        ("a YQ=", "a"),
        ("a YQ===", "a"),
        ("a =", "a"),
        ("a ====", "a"),
        ("a YR==", "a"),  # non-canonical: non-zero unused bits
        ("a YQ==YQ==", "a"),  # data after padding
        ("a Y!==", "a"),
        ("a _w==", "a"),  # base64url
        ("a -w==", "a"),
        ("a YQ==\x00", "a"),
        ("a YQ==\r\n", "a"),
        ("ok YQ==,bad Y", "bad"),
    ],
)
def test_parse_metadata_bad_value(value: str, key: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(value)
    err = info.value
    assert err.status == 400
    assert err.code == "invalid-metadata"
    assert "Upload-Metadata" in err.message
    assert f"key {key!r}" in err.message
    assert "base64" in err.message


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("a  YQ==", "a"),  # two spaces
        ("a   YQ==", "a"),
        ("a YQ== Yg==", "a"),
        ("a Y Q==", "a"),
        ("ok YQ==,b  Yg==", "b"),
    ],
)
def test_parse_metadata_more_than_one_space(value: str, key: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(value)
    assert info.value.status == 400
    assert info.value.message.startswith(f"Upload-Metadata key {key!r}")
    assert "exactly one space" in info.value.message


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("a YQ==,a Yg==", "a"),
        ("a,a", "a"),
        ("a YQ==,b,a", "a"),
        ("a, a YQ==", "a"),
    ],
)
def test_parse_metadata_duplicate_key(value: str, key: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(value)
    assert info.value.status == 400
    assert info.value.message == f"Upload-Metadata key {key!r} appears more than once"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("clé YQ==", r"'cl\xe9'"),
        ("ключ YQ==", r"'\u043a\u043b\u044e\u0447'"),
        ("a\x00b YQ==", r"'a\x00b'"),
        ("a\x7fb YQ==", r"'a\x7fb'"),
        ("a\tYQ==", r"'a\tYQ=='"),  # tab is not the separator: it ends up in the key
        ("a\u00a0YQ==", r"'a\xa0YQ=='"),
        ("ok YQ==,k\x1b YQ==", r"'k\x1b'"),
    ],
)
def test_parse_metadata_bad_key(value: str, shown: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(value)
    err = info.value
    assert err.status == 400
    assert err.message.startswith(f"Upload-Metadata key {shown} ")
    assert "printable ASCII" in err.message
    assert err.message.isascii()


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ("a YQ==,,b Yg==", "after key 'a'"),
        ("a YQ==, ,b Yg==", "after key 'a'"),
        ("a YQ==,\t,b Yg==", "after key 'a'"),
        (",a YQ==", "at the start"),
        (" , a YQ==", "at the start"),
        ("a YQ==,", "after key 'a'"),
        ("a YQ==, ", "after key 'a'"),
        ("a,b,,", "after key 'b'"),
        (",", "at the start"),
        (",,", "at the start"),
    ],
)
def test_parse_metadata_empty_element(value: str, where: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(value)
    assert info.value.status == 400
    assert info.value.message == f"Upload-Metadata has an empty element {where}"


def test_parse_metadata_error_message_truncates_long_key() -> None:
    key = "k" * 1000
    with pytest.raises(InvalidMetadata) as info:
        parse_metadata(f"{key} YQ")
    assert len(info.value.message) < 200
    assert "'" + "k" * 64 + "'..." in info.value.message


def test_parse_metadata_accepts_exactly_max_size() -> None:
    value = "k " + b64(b"x" * 3069) + ",a"
    assert len(value) == 4096
    assert parse_metadata(value) == {"k": "x" * 3069, "a": ""}


@pytest.mark.parametrize(
    ("value", "max_size"),
    [
        ("k " + b64(b"x" * 3069) + ",ab", 4096),  # 4097 characters
        ("k " + "A" * 100_000, 4096),
        (",,,," * 2000, 4096),  # the size is checked before the syntax
        ("a YQ==", 5),
        (" " * 11, 10),
    ],
)
def test_parse_metadata_too_large(value: str, max_size: int) -> None:
    assert len(value) > max_size
    with pytest.raises(HeaderTooLarge) as info:
        parse_metadata(value, max_size=max_size)
    err = info.value
    assert err.status == 431
    assert err.code == "header-too-large"
    assert err.message == f"Upload-Metadata is longer than {max_size} characters"


def test_parse_metadata_custom_max_size_allows_larger_header() -> None:
    value = "k " + b64(b"y" * 6000)
    assert parse_metadata(value, max_size=len(value)) == {"k": "y" * 6000}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, ""),
        ({"a": ""}, "a"),
        ({"a": "a"}, "a YQ=="),
        ({"a": "a", "b": "", "c": "abc"}, "a YQ==,b,c YWJj"),
        (
            {"filename": "world_domination_plan.pdf", "is_confidential": ""},
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
        ),
        ({"name": "\U0001f600"}, "name 8J+YgA=="),
    ],
)
def test_encode_metadata(metadata: dict[str, str], expected: str) -> None:
    assert encode_metadata(metadata) == expected


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"a": ""},
        {"filename": "report.pdf", "filetype": "application/pdf"},
        {"name": "Grüße, 世界 \U0001f600", "empty": "", "other": ""},
        {"spaces": "  a  b  ", "commas": ",,,", "newlines": "a\r\nb", "nul": "\x00"},
        {"x": "é" * 500},
        {"!#$%&'()*+-./:;<=>?@[]^_`{|}~": "punctuation key"},
        {"Key": "upper", "key": "lower"},
        {"b": "2", "a": "1"},
    ],
)
def test_metadata_round_trip(metadata: dict[str, str]) -> None:
    encoded = encode_metadata(metadata)
    decoded = parse_metadata(encoded, max_size=len(encoded))
    assert decoded == metadata
    assert list(decoded) == list(metadata)


@pytest.mark.parametrize("key", ["", "a b", "a,b", "é", "a\n", "a\tb", "\x7f"])
def test_encode_metadata_rejects_invalid_key(key: str) -> None:
    with pytest.raises(ValueError, match="invalid Upload-Metadata key"):
        encode_metadata({key: "v"})


# --- Upload-Concat -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("partial", ConcatRequest("partial", ())),
        (" partial\t", ConcatRequest("partial", ())),
        (f"final;/files/{ID}", ConcatRequest("final", (f"/files/{ID}",))),
        (
            f"final;/files/{ID} /files/{ID2}",
            ConcatRequest("final", (f"/files/{ID}", f"/files/{ID2}")),
        ),
        (
            f"final;http://localhost:1080/files/{ID}   https://h/files/{ID2}/",
            ConcatRequest(
                "final", (f"http://localhost:1080/files/{ID}", f"https://h/files/{ID2}/")
            ),
        ),
        (f"final; /files/{ID} ", ConcatRequest("final", (f"/files/{ID}",))),
        (f"final;/files/{ID} /files/{ID}", ConcatRequest("final", (f"/files/{ID}",) * 2)),
        # parse_concat checks the grammar only; upload_id_from_url checks each URL afterwards.
        ("final;partial", ConcatRequest("final", ("partial",))),
    ],
)
def test_parse_concat_valid(value: str, expected: ConcatRequest) -> None:
    assert parse_concat(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "partial;",
        f"partial;/files/{ID}",
        "partial final",
        "Partial",
        "PARTIAL",
        "partials",
        "final",
        "final;",
        "final; ",
        "final;   ",
        f"final /files/{ID}",
        f"final,/files/{ID}",
        f"final:/files/{ID}",
        f"Final;/files/{ID}",
        f"FINAL;/files/{ID}",
        f"finale;/files/{ID}",
        f"final ;/files/{ID}",
        f";/files/{ID}",
        f"/files/{ID}",
        "full",
        "partial,final",
    ],
)
def test_parse_concat_malformed(value: str) -> None:
    with pytest.raises(InvalidConcat) as info:
        parse_concat(value)
    err = info.value
    assert err.status == 400
    assert err.code == "invalid-concat"
    assert "Upload-Concat" in err.message


def test_parse_concat_final_without_url_has_specific_message() -> None:
    with pytest.raises(InvalidConcat) as info:
        parse_concat("final;  ")
    assert info.value.message == 'Upload-Concat "final;" must list at least one upload URL'


def test_concat_request_defaults_and_frozen() -> None:
    request = ConcatRequest("partial")
    assert request.urls == ()
    with pytest.raises(AttributeError):
        request.kind = "final"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kind", "urls", "expected"),
    [
        ("partial", (), "partial"),
        ("final", [f"/files/{ID}"], f"final;/files/{ID}"),
        (
            "final",
            (f"/files/{ID}", f"http://h/files/{ID2}"),
            f"final;/files/{ID} http://h/files/{ID2}",
        ),
    ],
)
def test_format_concat(kind: str, urls: tuple[str, ...], expected: str) -> None:
    assert format_concat(kind, urls) == expected
    assert parse_concat(expected) == ConcatRequest(kind, tuple(urls))


def test_format_concat_default_urls() -> None:
    assert format_concat("partial") == "partial"


@pytest.mark.parametrize(
    ("kind", "urls"),
    [("partial", ["/files/x"]), ("final", []), ("other", []), ("Final", ["/files/x"])],
)
def test_format_concat_rejects_impossible_combinations(kind: str, urls: list[str]) -> None:
    with pytest.raises(ValueError, match="cannot format Upload-Concat"):
        format_concat(kind, urls)


# --- upload ids and URLs -----------------------------------------------------------------------


def test_is_upload_id_accepts_uuid4_hex() -> None:
    assert is_upload_id(uuid.uuid4().hex) is True
    assert is_upload_id(ID) is True


@pytest.mark.parametrize(
    "value",
    [
        "",
        ID[:-1],  # 31 characters
        ID + "0",  # 33 characters
        ID.upper(),
        str(uuid.UUID(ID)),  # with dashes
        ID[:-1] + "g",
        ID + "\n",
        " " + ID,
        "../" + ID[3:],
        "\uff10" * 32,  # full-width zeros
    ],
)
def test_is_upload_id_rejects(value: str) -> None:
    assert is_upload_id(value) is False


def test_upload_id_pattern() -> None:
    assert protocol.UPLOAD_ID_PATTERN.pattern == "[0-9a-f]{32}"


@pytest.mark.parametrize(
    ("url", "base_path"),
    [
        (f"/files/{ID}", "/files/"),
        (f"/files/{ID}/", "/files/"),
        (f"http://localhost:1080/files/{ID}", "/files/"),
        (f"https://example.com/files/{ID}/", "/files/"),
        (f"HTTP://EXAMPLE.COM/files/{ID}", "/files/"),
        (f"http://user@[::1]:8080/files/{ID}", "/files/"),
        (f"//example.com/files/{ID}", "/files/"),  # scheme-relative reference
        (f"/api/uploads/{ID}", "/api/uploads/"),
        (f"/api/uploads/{ID}", "/api/uploads"),  # base path without trailing slash
        (f"http://h/{ID}", "/"),
    ],
)
def test_upload_id_from_url_valid(url: str, base_path: str) -> None:
    assert upload_id_from_url(url, base_path) == ID


def test_upload_id_from_url_default_base_path() -> None:
    assert upload_id_from_url(f"/files/{ID2}") == ID2


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/",
        "/files",
        "/files/",
        f"/files/{ID}?x=1",
        f"/files/{ID}?",
        f"/files/{ID}/?x=1",
        f"/files/{ID}#frag",
        f"/files/{ID}#",
        f"http://h/files/{ID}?download=1",
        f"/uploads/{ID}",
        f"/prefix/files/{ID}",
        f"/Files/{ID}",
        f"files/{ID}",  # relative path without leading slash
        f"{ID}",
        f"/files/{ID.upper()}",
        f"/files/{ID[:-1]}",
        f"/files/{ID}0",
        f"/files/{ID}x",
        f"/files/{ID}//",
        f"/files//{ID}",
        f"/files/{ID}/extra",
        f"/files/{ID}/{ID2}",
        f"/files/../files/{ID}",
        f"/files/{uuid.UUID(ID)}",
        f"/files/%30{ID[1:]}",  # percent-encoded
        f"ftp://h/files/{ID}",
        f"file:///files/{ID}",
        f"javascript:/files/{ID}",
        f"http:/files/{ID}",  # scheme without host
        f"http:files/{ID}",
        # urlsplit silently removes tabs/CR/LF and strips leading whitespace: must still fail.
        f"/files/{ID[:16]}\n{ID[16:]}",
        f"/files/{ID[:16]}\t{ID[16:]}",
        f"/files/{ID}\r\n",
        f" /files/{ID}",
        f"/files/{ID} ",
        f"\x00/files/{ID}",
        f"/files/{ID}\x00",
        f"/files/{ID[:31]}é",
    ],
)
def test_upload_id_from_url_rejects(url: str) -> None:
    with pytest.raises(InvalidConcat) as info:
        upload_id_from_url(url)
    err = info.value
    assert err.status == 400
    assert err.code == "invalid-concat"
    assert err.message.startswith("not an upload URL of this server: ")
    assert "\r" not in err.message and "\n" not in err.message


def test_upload_id_from_url_message_quotes_the_url() -> None:
    url = f"/uploads/{ID}"
    with pytest.raises(InvalidConcat) as info:
        upload_id_from_url(url)
    assert info.value.message == f"not an upload URL of this server: {url!r}"


def test_upload_id_from_url_respects_base_path() -> None:
    with pytest.raises(InvalidConcat):
        upload_id_from_url(f"/files/{ID}", base_path="/api/uploads/")


def test_upload_id_from_url_message_is_truncated_and_single_line() -> None:
    url = "/files/\r\n" + "x" * 1000
    with pytest.raises(InvalidConcat) as info:
        upload_id_from_url(url)
    shown = ("/files/" + "x" * 1000)[:198]  # the CR/LF fall inside the first 200 characters
    assert info.value.message == f"not an upload URL of this server: {shown!r}"


# --- Upload-Expires ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (1750867200, "Wed, 25 Jun 2025 16:00:00 GMT"),
        (1750867200.999, "Wed, 25 Jun 2025 16:00:00 GMT"),
        (951782400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (4102444799, "Thu, 31 Dec 2099 23:59:59 GMT"),
    ],
)
def test_http_date(timestamp: float, expected: str) -> None:
    assert http_date(timestamp) == expected


# --- safe_header_value -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("report.pdf", "report.pdf"),
        ("a b", "a b"),
        ("a\r\nSet-Cookie: x=1", "aSet-Cookie: x=1"),
        ("a\nb\rc", "abc"),
        ("a\x00b", "ab"),
        ("a\x7fb", "ab"),
        ("a\tb", "ab"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("a\x85b\x9fc", "abc"),  # C1 control characters
        ("".join(map(chr, range(32))) + "\x7f", ""),
        ("Grüße 世界 \U0001f600", "Grüße 世界 \U0001f600"),
    ],
)
def test_safe_header_value_removes_control_characters(value: str, expected: str) -> None:
    assert safe_header_value(value) == expected


def test_safe_header_value_truncates() -> None:
    assert safe_header_value("x" * 2000) == "x" * 1024
    assert safe_header_value("x" * 1024) == "x" * 1024
    assert safe_header_value("abcdef", limit=3) == "abc"
    assert safe_header_value("abc", limit=0) == ""


def test_safe_header_value_removes_before_truncating() -> None:
    assert safe_header_value("\n" * 10 + "abcdef", limit=3) == "abc"
