"""Bearer JWTs from an existing identity provider, verified with PyJWT.

Either an HS256 shared secret (`TUSSERVER_JWT_SECRET`) or the provider's public keys from a JWKS
URL (`TUSSERVER_JWT_JWKS_URL`). The JWKS is cached; a token whose `kid` the cache does not know
(the provider rotated its keys) triggers one refetch, but at most one per `REFETCH_INTERVAL`, so
a stream of tokens with made-up `kid`s cannot turn this server into a flood against the provider.

Audience is always checked (settings refuse JWT without `TUSSERVER_JWT_AUDIENCE`), the issuer when
configured, and `exp` and `sub` are required. `sub` names the user; the role is `admin` only when
the configured role claim says so (a string, or a list that contains "admin").
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import urllib3

from ..settings import Settings

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
SYMMETRIC_ALGORITHMS = ("HS256",)
JWKS_LIFETIME = 600.0
"""Seconds a fetched key set is trusted before the next use fetches it again."""
REFETCH_INTERVAL = 30.0
"""Least seconds between two fetches caused by unknown `kid`s."""
MAX_JWKS_BYTES = 256 * 1024
MAX_TOKEN = 8192
MAX_SUBJECT = 255
LEEWAY = 30


class JwksCache:
    """The provider's signing keys by `kid`, fetched on demand and refetched when stale."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.monotonic,
        lifetime: float = JWKS_LIFETIME,
        refetch_interval: float = REFETCH_INTERVAL,
        timeout: float = 5.0,
    ):
        self.url = url
        self.clock = clock
        self.lifetime = lifetime
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self._http = urllib3.PoolManager(retries=False)

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (a set of one key also serves tokens without a `kid`)."""
        with self._lock:
            now = self.clock()
            if self._fetched_at is None or now - self._fetched_at >= self.lifetime:
                self._refresh(now)
            found = self._lookup(kid)
            if found is None and now - (self._fetched_at or 0.0) >= self.refetch_interval:
                self._refresh(now)  # maybe the provider rotated its keys since we looked
                found = self._lookup(kid)
            return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        """Fetch the key set; on failure keep the keys we had (and retry only after a while)."""
        self._fetched_at = now
        try:
            response = self._http.request(
                "GET", self.url, timeout=self.timeout, preload_content=False, redirect=False
            )
            try:
                raw = response.read(MAX_JWKS_BYTES + 1)
            finally:
                response.release_conn()
            if response.status != 200 or len(raw) > MAX_JWKS_BYTES:
                raise ValueError(f"status {response.status}, {len(raw)} bytes")
            keys = _parse_jwks(json.loads(raw))
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            log.warning("could not fetch the JWKS from %s: %s", self.url, exc)
            return
        self._keys = keys


def _parse_jwks(document: Any) -> dict[str | None, jwt.PyJWK]:
    """Usable signing keys of a JWKS document; keys PyJWT cannot use are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(data)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        keys[data.get("kid") if isinstance(data.get("kid"), str) else None] = key
    return keys


class JwtVerifier:
    """`verify(token) -> (sub, role) | None`: None for anything not a valid, current token."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic):
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer or None
        self.role_claim = settings.jwt_role_claim
        self.secret = settings.jwt_secret
        self.jwks = JwksCache(settings.jwt_jwks_url, clock) if settings.jwt_jwks_url else None

    def verify(self, token: str) -> tuple[str, str] | None:
        if len(token) > MAX_TOKEN or token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key = self._key_for(algorithm, header.get("kid"))
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError):  # malformed keys or claims, too
            return None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
            return None
        if not subject.isprintable():
            return None
        return subject, self._role(claims)

    def _key_for(self, algorithm: Any, kid: Any) -> Any:
        if self.jwks is None:
            return self.secret if algorithm in SYMMETRIC_ALGORITHMS else None
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            return None  # e.g. "none", or HS256 signed with the public key as the secret
        if kid is not None and not isinstance(kid, str):
            return None
        found = self.jwks.key(kid)
        return None if found is None else found.key

    def _role(self, claims: dict[str, Any]) -> str:
        """`admin` when the role claim (a dotted path, e.g. `realm_access.roles`) says so."""
        if not self.role_claim:
            return "user"
        value: Any = claims
        for part in self.role_claim.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value == "admin" or (isinstance(value, list) and "admin" in value):
            return "admin"
        return "user"
