"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile).

`verify` takes the same time whether or not the user exists: for an unknown name it checks the
password against a fixed dummy hash, so a wrong name and a wrong password cannot be told apart
by timing either.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 1024
"""Longer inputs are refused before hashing: argon2 on megabytes of "password" is a DoS."""

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("tusserver: no such user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; with no hash (unknown user) spend the same time, then False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """The stored hash used weaker parameters than today's: rehash at the next login."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def check_strength(password: str) -> str | None:
    """Why a new password cannot be used, or None if it can."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password may have at most {MAX_LENGTH} characters"
    return None
