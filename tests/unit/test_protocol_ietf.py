"""Unit tests of the IETF draft and RFC 9530 codec, `tusserver.protocol_ietf`."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tusserver.errors import InvalidHeader, UnsupportedInteropVersion
from tusserver.protocol_ietf import (
    INTERIM_STATUS,
    LATEST,
    Draft,
    Limits,
    completed_upload,
    decode_digest_values,
    digest_checksums,
    encode_digest_values,
    format_boolean,
    format_digests,
    format_interim,
    format_limits,
    inconsistent_length,
    mismatching_offset,
    parse_boolean,
    parse_digests,
    parse_integer,
    parse_interop_version,
    parse_limits,
    parse_want_digest,
)

SHA256 = hashlib.sha256(b"abc").digest()
SHA512 = hashlib.sha512(b"abc").digest()


def sf(raw: bytes) -> str:
    return ":" + base64.b64encode(raw).decode() + ":"


# -- interop version -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "version"), [("6", 6), ("8", 8), (" 8 ", 8), ("8;x=1", 8), ("06", 6)]
)
def test_supported_interop_versions(value: str, version: int) -> None:
    assert parse_interop_version(value) == Draft(version)


@pytest.mark.parametrize(
    "value", ["", "3", "4", "5", "7", "9", "8.0", "-8", "?1", "abc", "6, 8", "8 8", "é"]
)
def test_unsupported_interop_versions_name_the_served_ones(value: str) -> None:
    with pytest.raises(UnsupportedInteropVersion) as info:
        parse_interop_version(value)
    assert info.value.status == 400
    assert "6 and 8" in info.value.message
    assert info.value.headers["Upload-Draft-Interop-Version"] == "8"


def test_versions_differ_only_in_names() -> None:
    assert Draft(6).age_limit_key == "expires"
    assert Draft(8).age_limit_key == "max-age"
    assert not Draft(6).has_length_problem_type
    assert Draft(8).has_length_problem_type
    assert Draft(8) == LATEST


# -- booleans and integers -------------------------------------------------------------------


@pytest.mark.parametrize(("value", "parsed"), [("?1", True), ("?0", False), (" ?1 ", True)])
def test_boolean(value: str, parsed: bool) -> None:
    assert parse_boolean("Upload-Complete", value) is parsed
    assert format_boolean(parsed) == value.strip()


@pytest.mark.parametrize(
    "value", ["", "1", "0", "true", "?", "?2", "?10", "? 1", "?1,?0", "1.0", '"?1"', "?1 x", "ü"]
)
def test_malformed_boolean(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_boolean("Upload-Complete", value)
    assert "Upload-Complete" in info.value.message


@pytest.mark.parametrize(
    ("value", "parsed"), [("0", 0), ("42", 42), ("999999999999999", 10**15 - 1)]
)
def test_integer(value: str, parsed: int) -> None:
    assert parse_integer("Upload-Offset", value) == parsed


@pytest.mark.parametrize(
    "value",
    ["", "-1", "1.5", "abc", "1000000000000000", "0x10", "1 2", "1,2", "?1", '"1"', "١٢", "+1"],
)
def test_malformed_integer(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_integer("Upload-Offset", value)
    assert "Upload-Offset" in info.value.message


def test_oversized_header_is_refused() -> None:
    with pytest.raises(InvalidHeader):
        parse_integer("Upload-Offset", "1" * 9000)


# -- Upload-Limit ----------------------------------------------------------------------------


def test_limits_use_each_versions_key() -> None:
    limits = Limits(max_size=100, min_size=0, max_append_size=50, max_age=60)
    assert (
        format_limits(limits, Draft(8))
        == "max-size=100, min-size=0, max-append-size=50, max-age=60"
    )
    assert format_limits(limits, Draft(6)).endswith("expires=60")
    assert parse_limits(format_limits(limits, Draft(6)), Draft(6)) == limits
    assert format_limits(Limits()) == ""
    assert format_limits(Limits(max_age=-5)) == "max-age=0"


def test_parse_limits_ignores_unknown_keys_and_refuses_wrong_types() -> None:
    assert parse_limits("max-size=5, future=?1") == Limits(max_size=5)
    for bad in ("max-size=?1", "max-size=-1", "max-size=1.5", 'max-age="x"', "=", "a=1,,"):
        with pytest.raises(InvalidHeader):
            parse_limits(bad)


# -- digests ---------------------------------------------------------------------------------


def test_parse_digests_keeps_known_algorithms() -> None:
    value = f"sha-256={sf(SHA256)}, sha-512={sf(SHA512)}, md5={sf(b'x')}, unixsum=5"
    assert parse_digests("Repr-Digest", value) == {"sha-256": SHA256, "sha-512": SHA512}
    checksums = digest_checksums({"sha-512": SHA512})
    assert [(c.algorithm, c.digest) for c in checksums] == [("sha512", SHA512)]
    assert checksums[0].hasher().name == "sha512"


@pytest.mark.parametrize(
    "value",
    [
        "sha-256",  # a boolean, not a byte sequence
        "sha-256=5",
        'sha-256="abc"',
        "sha-256=:AAAA:",  # 3 bytes
        f"sha-512={sf(SHA256)}",  # wrong size for the algorithm
        "sha-256=:not base64!:",
        "sha-256=:" + base64.b64encode(SHA256).decode(),  # unterminated
        "SHA-256=" + sf(SHA256),  # keys are lower case
        ",",
    ],
)
def test_malformed_digests(value: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        parse_digests("Content-Digest", value)
    assert "Content-Digest" in info.value.message


def test_empty_or_unknown_only_digest_is_nothing_to_verify() -> None:
    assert parse_digests("Content-Digest", "md5=:AAAA:") == {}
    assert parse_digests("Content-Digest", "") == {}


def test_digest_round_trip() -> None:
    digests = {"sha-256": SHA256}
    assert format_digests(digests) == f"sha-256={sf(SHA256)}"
    assert parse_digests("Repr-Digest", format_digests(digests)) == digests
    assert decode_digest_values(encode_digest_values(digests)) == digests
    assert decode_digest_values({"sha-256": ""}) == {}


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        ("sha-256=1", ("sha-256",)),
        ("sha-256=1, sha-512=3", ("sha-512", "sha-256")),
        ("sha-512=3, sha-256=3", ("sha-512", "sha-256")),  # ties keep the client's order
        ("sha-256=0, sha-512=1", ("sha-512",)),  # 0: not acceptable
        ("md5=10", ()),
    ],
)
def test_want_digest(value: str, wanted: tuple[str, ...]) -> None:
    assert parse_want_digest("Want-Repr-Digest", value) == wanted


@pytest.mark.parametrize(
    "value", ["sha-256=11", "sha-256=-1", "sha-256=?1", "sha-256=0.5", "x=:AA==:", ";"]
)
def test_malformed_want_digest(value: str) -> None:
    with pytest.raises(InvalidHeader):
        parse_want_digest("Want-Repr-Digest", value)


# -- problems and interim responses ----------------------------------------------------------


def test_problem_documents() -> None:
    mismatch = json.loads(mismatching_offset(100, 50).to_json())
    assert (
        mismatch["type"]
        == "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    )
    assert (mismatch["expected-offset"], mismatch["provided-offset"], mismatch["status"]) == (
        100,
        50,
        409,
    )
    assert completed_upload().type.endswith("#completed-upload")
    assert completed_upload().status == 400
    assert inconsistent_length(Draft(8)).type.endswith("#inconsistent-upload-length")
    old = inconsistent_length(Draft(6), "why")
    assert (old.type, old.title, old.detail) == ("about:blank", "Bad Request", "why")


def test_interim_response_bytes() -> None:
    raw = format_interim(
        INTERIM_STATUS, {"Location": "http://h/files/x", "Upload-Limit": "max-age=5"}
    )
    assert raw == (
        b"HTTP/1.1 104 Upload Resumption Supported\r\nLocation: http://h/files/x\r\n"
        b"Upload-Limit: max-age=5\r\n\r\n"
    )


def test_interim_response_never_carries_a_line_break() -> None:
    raw = format_interim(INTERIM_STATUS, {"Location": "x\r\nSet-Cookie: a=b", "Upload-Limit": ""})
    assert raw == b"HTTP/1.1 104 Upload Resumption Supported\r\n\r\n"
