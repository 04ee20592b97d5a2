"""The signing key, link signatures and grant tokens (auth/signed.py)."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path

import pytest

from tusserver.auth.principal import Grant
from tusserver.auth.signed import (
    issue_grant,
    load_or_create_secret_key,
    read_grant,
    sign_link,
    verify_link,
)
from tusserver.settings import Settings, SettingsError

KEY = b"k" * 32
UPLOAD = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def test_the_key_is_made_once_with_mode_0600_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = load_or_create_secret_key(settings)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    assert load_or_create_secret_key(settings) == key  # a restart signs with the same key


def test_workers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keys: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_or_create_secret_key(settings)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1


def test_a_configured_key_wins_and_writes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="s" * 40)
    assert load_or_create_secret_key(settings) == b"s" * 40
    assert not (tmp_path / "secret_key").exists()


def test_a_short_configured_key_is_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(secret_key="short")


def test_external_redis_without_a_key_warns_and_still_fails_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_or_create_secret_key(Settings(data_dir=tmp_path / "a", redis_url="redis://x"))
    other = load_or_create_secret_key(Settings(data_dir=tmp_path / "b", redis_url="redis://x"))
    assert "TUSSERVER_SECRET_KEY is not set" in caplog.text
    link = sign_link(first, UPLOAD, int(NOW) + 60, "secret")
    assert not verify_link(other, UPLOAD, int(NOW) + 60, "secret", link, now=NOW)


def test_a_link_verifies_only_as_signed() -> None:
    expires = int(NOW) + 60
    signature = sign_link(KEY, UPLOAD, expires, "s1")
    assert verify_link(KEY, UPLOAD, expires, "s1", signature, now=NOW)
    assert not verify_link(KEY, UPLOAD, expires + 1, "s1", signature, now=NOW)
    assert not verify_link(KEY, UPLOAD[::-1], expires, "s1", signature, now=NOW)
    assert not verify_link(KEY, UPLOAD, expires, "s2", signature, now=NOW)  # rotated: revoked
    assert not verify_link(KEY, UPLOAD, expires, None, signature, now=NOW)
    assert not verify_link(b"x" * 32, UPLOAD, expires, "s1", signature, now=NOW)
    assert not verify_link(KEY, UPLOAD, expires, "s1", signature, now=expires)  # expired
    assert not verify_link(KEY, UPLOAD, expires, "s1", "é" + signature[1:], now=NOW)


def grant(**changes: object) -> Grant:
    values: dict[str, object] = {
        "id": "g1",
        "owner": "alice",
        "max_size": 1000,
        "uploads": 2,
        "expires": NOW + 60,
        "metadata": {"project": "x"},
    }
    values.update(changes)
    return Grant(**values)  # type: ignore[arg-type]


def test_a_grant_round_trips() -> None:
    token = issue_grant(KEY, grant())
    assert token.startswith("tusg_")
    assert read_grant(KEY, token, now=NOW) == grant()


def test_an_expired_or_forged_grant_is_none() -> None:
    token = issue_grant(KEY, grant())
    assert read_grant(KEY, token, now=NOW + 60) is None
    assert read_grant(b"y" * 32, token, now=NOW) is None
    body, mac = token[len("tusg_") :].split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["uploads"] = 1000  # a holder raising its own limit
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert read_grant(KEY, f"tusg_{forged}.{mac}", now=NOW) is None
    for junk in ("tusg_", "tusg_.", "tusg_abc", "tus_abc.def", "tusg_" + "a" * 9000, "tusg_é.é"):
        assert read_grant(KEY, junk, now=NOW) is None


def test_a_link_signature_never_passes_as_a_grant_mac() -> None:
    """Purpose labels keep the two kinds of signature apart even under one key."""
    body = base64.urlsafe_b64encode(b"{}").rstrip(b"=").decode()
    assert read_grant(KEY, f"tusg_{body}.{sign_link(KEY, body, 0, '')}", now=NOW) is None
