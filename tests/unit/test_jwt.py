"""JWT bearer tokens verified against a JWKS that this test serves on a local port."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.jwks import AUDIENCE, ISSUER, Provider, serve_jwks
from tusserver.auth.jwt import REFETCH_INTERVAL, JwtVerifier
from tusserver.settings import Settings, SettingsError


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()
    with serve_jwks(state) as url:
        yield state, url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(url: str, clock: Clock | None = None, **settings: Any) -> JwtVerifier:
    values = {"jwt_jwks_url": url, "jwt_audience": AUDIENCE, "jwt_issuer": ISSUER, **settings}
    return JwtVerifier(Settings(**values), clock=clock or Clock())


def test_a_valid_token_names_its_subject(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_key("k1")
    check = verifier(url)
    assert check.verify(idp.token("k1")) == ("alice", "user")
    assert check.verify(idp.token("k1", sub="bob")) == ("bob", "user")
    assert idp.fetches == 1  # the key set is cached


def test_wrong_audience_issuer_or_signer_is_refused(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_key("k1")
    idp.add_key("rogue", publish=False)
    check = verifier(url)
    assert check.verify(idp.token("k1", aud="another-app")) is None
    assert check.verify(idp.token("k1", iss="https://evil.test/")) is None
    assert check.verify(idp.token("k1", aud=None)) is None
    forged = idp.token("rogue")
    # A token signed by a key the provider never published, claiming a published kid.
    _, payload, signature = forged.split(".")
    real_header = idp.token("k1").split(".")[0]
    assert check.verify(f"{real_header}.{payload}.{signature}") is None
    assert check.verify(forged) is None


def test_an_expired_token_or_one_without_sub_is_refused(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_key("k1")
    check = verifier(url)
    assert check.verify(idp.token("k1", exp=int(time.time()) - 3600)) is None
    assert check.verify(idp.token("k1", sub="")) is None
    no_sub = jwt.encode(
        {"aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60},
        idp.private["k1"],
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert check.verify(no_sub) is None
    no_exp = jwt.encode(
        {"sub": "alice", "aud": AUDIENCE, "iss": ISSUER},
        idp.private["k1"],
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert check.verify(no_exp) is None


def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_interval(
    provider: tuple[Provider, str],
) -> None:
    idp, url = provider
    idp.add_key("k1")
    clock = Clock()
    check = verifier(url, clock)
    assert check.verify(idp.token("k1")) == ("alice", "user")
    assert idp.fetches == 1

    idp.add_key("k2")  # the provider rotates: a new key appears
    clock.now += REFETCH_INTERVAL
    assert check.verify(idp.token("k2")) == ("alice", "user")
    assert idp.fetches == 2

    # A flood of made-up kids right after costs the provider no further fetch.
    idp.add_key("k3", publish=False)
    for _ in range(20):
        assert check.verify(idp.token("k3")) is None
    assert idp.fetches == 2
    clock.now += REFETCH_INTERVAL
    assert check.verify(idp.token("k3")) is None
    assert idp.fetches == 3


def test_a_provider_outage_keeps_the_cached_keys(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_key("k1")
    clock = Clock()
    check = verifier(url, clock)
    assert check.verify(idp.token("k1")) is not None
    idp.status = 500
    clock.now += 3600  # the cache is stale: a refetch is due, and fails
    assert check.verify(idp.token("k1")) == ("alice", "user")


def test_algorithm_confusion_is_refused(provider: tuple[Provider, str]) -> None:
    """HS256 signed with the provider's public key as the secret, and alg none."""
    idp, url = provider
    idp.add_key("k1")
    check = verifier(url)
    claims = {"sub": "mallory", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60}
    public_pem = (
        idp.private["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"kid": "k1", "alg": "HS256"}
    from jwt.api_jws import PyJWS

    hs = PyJWS()
    hs._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    confused = hs.encode(json.dumps(claims).encode(), public_pem, algorithm="HS256", headers=header)
    assert check.verify(confused) is None
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    assert check.verify(unsigned) is None
    assert check.verify("not.a.token") is None
    assert check.verify("x" * 10_000) is None


def test_the_role_claim_makes_admins(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_key("k1")
    check = verifier(url, jwt_role_claim="realm_access.roles")
    assert check.verify(idp.token("k1", realm_access={"roles": ["admin", "x"]})) == (
        "alice",
        "admin",
    )
    assert check.verify(idp.token("k1", realm_access={"roles": ["user"]})) == ("alice", "user")
    assert check.verify(idp.token("k1", realm_access="admin")) == ("alice", "user")
    flat = verifier(url, jwt_role_claim="role")
    assert flat.verify(idp.token("k1", role="admin")) == ("alice", "admin")
    assert flat.verify(idp.token("k1", role="administrator")) == ("alice", "user")


def test_hs256_with_a_shared_secret() -> None:
    secret = "s" * 40
    check = JwtVerifier(Settings(jwt_secret=secret, jwt_audience=AUDIENCE))
    claims = {"sub": "carol", "aud": AUDIENCE, "exp": int(time.time()) + 60}
    assert check.verify(jwt.encode(claims, secret, algorithm="HS256")) == ("carol", "user")
    assert check.verify(jwt.encode(claims, "t" * 40, algorithm="HS256")) is None
    assert check.verify(jwt.encode(claims, secret, algorithm="HS512")) is None


def test_jwt_settings_are_checked() -> None:
    with pytest.raises(SettingsError, match="AUDIENCE"):
        Settings(jwt_jwks_url="https://idp.test/jwks")
    with pytest.raises(SettingsError, match="not both"):
        Settings(jwt_jwks_url="https://idp.test/jwks", jwt_secret="s" * 40, jwt_audience="a")
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(jwt_secret="short", jwt_audience="a")
