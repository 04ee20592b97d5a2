"""HMAC-signed credentials: download links and upload grants, and the key that signs them.

Both are bearer credentials a server can check without a lookup of its own, so they work on every
server of a fleet that shares `TUSSERVER_SECRET_KEY`:

- a **link** signature covers the upload id, the expiry and the upload's *link secret* (a random
  value kept in the state store). Rotating that secret revokes every link of the upload at once,
  without a list of links to keep.
- a **grant** token (`tusg_<payload>.<mac>`) carries its whole content (id, owner, limits, fixed
  metadata, expiry) in a signed JSON payload, so a web application's backend can hand it to a
  browser and tusserver needs no state to recognise it.

Each kind is signed with its own purpose label, so a link signature can never pass as a grant
MAC or the other way round. Signatures are compared with `hmac.compare_digest` (constant time),
and nothing in here ever logs a key, a signature or a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from ..settings import Settings
from .principal import Grant

log = logging.getLogger(__name__)

GRANT_PREFIX = "tusg_"
KEY_FILE = "secret_key"
KEY_BYTES = 32
MAX_GRANT_TOKEN = 8192
"""Longer bearer values are not even decoded: a grant carries a few small fields."""

_LINK_PURPOSE = b"tusserver link v1\x00"
_GRANT_PURPOSE = b"tusserver grant v1\x00"


# -- the key ---------------------------------------------------------------------------------
def load_or_create_secret_key(settings: Settings) -> bytes:
    """The key that signs links and grants.

    `TUSSERVER_SECRET_KEY` when set. Otherwise a random key generated once and kept in
    `<data dir>/secret_key` (mode 0600), created atomically so that workers starting together
    agree on one key. That is right for the embedded default (one machine, one data directory).
    With an external Redis and no key, every server would make its own: links and grants then
    fail closed (403/401) on the servers that did not sign them, which is safe but surprising,
    so it is logged as a warning; a fleet must set `TUSSERVER_SECRET_KEY`.
    """
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.data_dir / KEY_FILE
    existing = _read_key(path)
    if existing is not None:
        return existing
    if settings.redis_url:
        log.warning(
            "TUSSERVER_SECRET_KEY is not set: signing links and grants with a key generated in "
            "the data directory. Servers that share Redis but not that key reject each "
            "other's links and grants; set TUSSERVER_SECRET_KEY on every server of a fleet."
        )
    return _create_key(path)


def _read_key(path: Path) -> bytes | None:
    try:
        raw = path.read_text().strip()
    except FileNotFoundError:
        return None
    if len(raw) < KEY_BYTES:
        raise ValueError(f"{path} holds no usable key; remove it to make a new one")
    return raw.encode()


def _create_key(path: Path) -> bytes:
    """Write a new key (mode 0600 from the start) and publish it with one atomic `link`.

    The key is complete in a private temporary file before it appears under its name, so a
    process racing us never reads a half-written key; if another process published first, its
    key wins and ours is thrown away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(KEY_BYTES)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        existing = _read_key(path)
        if existing is None:  # pragma: no cover - it existed a moment ago and keys are kept
            raise
        return existing
    finally:
        temporary.unlink(missing_ok=True)
    return key.encode()


# -- links -----------------------------------------------------------------------------------
def new_link_secret() -> str:
    """A fresh per-upload link secret (rotating it revokes every link of the upload)."""
    return secrets.token_urlsafe(24)


def sign_link(key: bytes, upload_id: str, expires: int, link_secret: str) -> str:
    """The signature of a download link: base64url HMAC-SHA256, no padding."""
    message = _LINK_PURPOSE + f"{upload_id}\x00{int(expires)}\x00{link_secret}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def verify_link(
    key: bytes,
    upload_id: str,
    expires: int,
    link_secret: str | None,
    signature: str,
    now: float | None = None,
) -> bool:
    """True only for an unexpired link signed with this key and the upload's current secret."""
    if link_secret is None:
        return False
    expected = sign_link(key, upload_id, expires, link_secret)
    # Compare first, then the expiry: the time taken must not depend on which check failed.
    valid = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
    return valid and int(expires) > (time.time() if now is None else now)


# -- grants ----------------------------------------------------------------------------------
def issue_grant(key: bytes, grant: Grant) -> str:
    """A grant token: `tusg_` + base64url(JSON payload) + `.` + base64url(MAC)."""
    payload = {
        "id": grant.id,
        "owner": grant.owner,
        "max_size": grant.max_size,
        "uploads": grant.uploads,
        "exp": int(grant.expires),
        "metadata": grant.metadata,
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{GRANT_PREFIX}{body}.{_grant_mac(key, body)}"


def read_grant(key: bytes, token: str, now: float | None = None) -> Grant | None:
    """The grant a token carries, or None if it is malformed, forged or expired."""
    if not token.startswith(GRANT_PREFIX) or len(token) > MAX_GRANT_TOKEN:
        return None
    body, dot, mac = token[len(GRANT_PREFIX) :].partition(".")
    if not dot or not body.isascii() or not mac.isascii():
        return None
    if not hmac.compare_digest(_grant_mac(key, body).encode(), mac.encode()):
        return None
    payload = _decode_payload(body)
    if payload is None:
        return None
    grant = _grant_from(payload)
    if grant is None or grant.expires <= (time.time() if now is None else now):
        return None
    return grant


def new_grant_id() -> str:
    return secrets.token_hex(12)


def _grant_mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, _GRANT_PURPOSE + body.encode(), hashlib.sha256).digest())


def _decode_payload(body: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def _grant_from(payload: dict[str, Any]) -> Grant | None:
    """Our own signed payload, but still checked field by field: a key change must not crash."""
    fields = ("id", "owner", "max_size", "uploads", "exp", "metadata")
    if any(name not in payload for name in fields):
        return None
    metadata = payload["metadata"]
    if not (
        isinstance(payload["id"], str)
        and isinstance(payload["owner"], str)
        and _is_int(payload["max_size"])
        and _is_int(payload["uploads"])
        and _is_int(payload["exp"])
        and isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        return None
    return Grant(
        id=payload["id"],
        owner=payload["owner"],
        max_size=payload["max_size"],
        uploads=payload["uploads"],
        expires=float(payload["exp"]),
        metadata=dict(metadata),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
