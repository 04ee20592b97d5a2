"""Accounts in Redis: users, API tokens, sessions, login rate limits, usage. The only module that
knows these keys.

Keys (under the configurable prefix; a user's own keys share the hash tag `{name}`, so a script
that touches a user and its usage stays in one Cluster slot):
- `user:{<name>}` hash: role, hash (argon2id), created, disabled ("1"/""), quota ("" = default).
- `users` sorted set of names by creation time (listings).
- `usage:{<name>}` integer: bytes held in live uploads (reserved before an upload records a
  length, released when it goes).
- `token:<sha256 of the token>` hash: id, owner, label, created, expires, last_used, scopes
  (comma-separated; "" or missing = the owner's full rights). The token itself is never
  stored. `tokenid:<id>` -> the sha256 (revocation by id); `tokens:{<name>}` set of the
  user's token ids.
- `session:<sha256 of the cookie>` hash: user, created, expires (with a Redis TTL);
  `sessions:{<name>}` set of the user's session hashes (to end them all at once).
- `login:name:<name>` / `login:addr:<address>` failed-login counters (fixed windows, TTL).
- `grant:<id>:uses` how many uploads a grant has created (TTL until the grant expires).

Every script touches one key (or one user's keys, which share the user's tag), so all of this
works on a Redis Cluster too; what spans keys of several slots is a `Batch` of single-key
commands, and a credential check reads the token or session, then its user.

Credential checks are cached in the process, but only while Redis says nothing changed: every
change that can refuse a credential (revoke, disable, role, password, logout, removal) publishes
on the `accounts` channel right after it is made, and each process drains that channel (a
non-blocking read of an open socket) before it trusts its cache. So a revocation holds on every
server sharing Redis from the next request on, and a known token costs no round trip. A cached
entry is also dropped when its token's last-used time is due (once a minute), when the channel's
connection breaks, and whenever the subscription is not confirmed: then every check reads Redis.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import threading
from dataclasses import dataclass
from typing import Any

import redis

from ..auth.scopes import decode_scopes, encode_scopes
from .batch import Batch
from .connect import REDIS_ERRORS
from .redis import translate_errors

log = logging.getLogger(__name__)


def _original_poll() -> Any:
    """The operating system's poll(2), even under gevent's monkey-patching: a zero-timeout poll
    never blocks, and gevent's cooperative emulation costs a hub round per request."""
    try:
        from gevent.monkey import get_original
    except ImportError:  # pragma: no cover - gevent is a dependency, but not needed here
        return select.poll
    return get_original("select", "poll")


# A token's last-used time, at most once per `touch_every` and only on a token that still exists
# (a plain HSET would bring a revoked one back as a stub).
_TOUCH_TOKEN = """
local last = redis.call('HGET', KEYS[1], 'last_used')
if not last then return 0 end
if last ~= '' and tonumber(ARGV[1]) - tonumber(last) < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'last_used', ARGV[1])
return 1
"""

# Reserve bytes against the owner's quota: {1, left after} or {0, left now}. left = -1: no limit.
_RESERVE = """
local u = redis.call('HMGET', KEYS[2], 'role', 'quota')
local limit = tonumber(ARGV[2])
if u[2] and u[2] ~= '' then limit = tonumber(u[2]) end
if u[1] == 'admin' or ARGV[3] == '1' then limit = 0 end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if limit > 0 and used + want > limit then return {0, limit - used} end
redis.pcall('INCRBY', KEYS[1], ARGV[1])
if limit > 0 then return {1, limit - used - want} end
return {1, -1}
"""

_RELEASE = """
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left < 0 then redis.call('SET', KEYS[1], '0') end
return 1
"""

# A fixed window counter: count one more, start the window's TTL on the first.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# One more use of a grant, unless it has run out: the new count, or 0.
_USE_GRANT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
n = redis.call('INCR', KEYS[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return n
"""


SESSION_RECHECK = 60.0
"""A cached session is read from Redis again at least this often (a safety net only)."""

CACHE_ENTRIES = 10_000
"""Credentials remembered per process; past that, new ones are checked in Redis each time."""

COUNTED_MAX = 2**50
"""An upload counts at most 1 PiB towards usage: Redis counters are 64-bit, tus lengths too."""


@dataclass(frozen=True)
class UserRecord:
    """A user as stored (the password hash included: never rendered to a client)."""

    name: str
    role: str
    password_hash: str
    created: float
    disabled: bool
    quota: int | None


@dataclass(frozen=True)
class TokenRecord:
    """An API token's metadata; the token itself is only ever known to its holder."""

    id: str
    owner: str
    label: str
    created: float
    expires: float | None
    last_used: float | None
    scopes: frozenset[str] | None = None
    """What the token may do (auth/scopes.py); None: everything its owner may."""


class AccountStore:
    """Reads and changes account state; each method is one round trip or one script."""

    def __init__(self, client: redis.Redis, prefix: str = "tusserver:", cache: bool = True):
        self.client = client
        self.prefix = prefix
        self._cache_enabled = cache
        self._cache: dict[str, tuple[Any, ...]] = {}
        self._generation = 0
        self._pubsub: Any = None
        self._poller: Any = None
        self._sock: Any = None
        self._lock = threading.Lock()
        self._touch_token = client.register_script(_TOUCH_TOKEN)
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)
        self._count = client.register_script(_COUNT)
        self._use_grant = client.register_script(_USE_GRANT)

    # -- keys ------------------------------------------------------------------------------
    def _user(self, name: str) -> str:
        return f"{self.prefix}user:{{{name}}}"

    def _usage(self, name: str) -> str:
        return f"{self.prefix}usage:{{{name}}}"

    def _user_tokens(self, name: str) -> str:
        return f"{self.prefix}tokens:{{{name}}}"

    def _user_sessions(self, name: str) -> str:
        return f"{self.prefix}sessions:{{{name}}}"

    def _token(self, digest: str) -> str:
        return f"{self.prefix}token:{digest}"

    def _token_id(self, token_id: str) -> str:
        return f"{self.prefix}tokenid:{token_id}"

    def _session(self, digest: str) -> str:
        return f"{self.prefix}session:{digest}"

    def _login(self, kind: str, key: str) -> str:
        return f"{self.prefix}login:{kind}:{key}"

    def _grant_uses(self, grant_id: str) -> str:
        return f"{self.prefix}grant:{grant_id}:uses"

    @property
    def _users(self) -> str:
        return f"{self.prefix}users"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}accounts"

    # -- the invalidated cache -------------------------------------------------------------
    def _fresh(self) -> int | None:
        """Apply pending invalidations; the cache generation, or None if the cache is unusable."""
        if not self._cache_enabled:
            return None
        with self._lock:
            try:
                if self._pubsub is None:
                    self._subscribe()
                elif not self._poller.poll(0):
                    # Nothing arrived since the last drain (which left redis-py's buffer empty):
                    # a bare poll(2) of the socket, a microsecond, instead of a parser round.
                    return self._generation
                while (message := self._pubsub.get_message(timeout=0)) is not None:
                    if message.get("type") == "message":
                        self._cache.clear()
                        self._generation += 1
                connection = self._pubsub.connection
                if connection is None or connection._sock is not self._sock:
                    # redis-py reconnected under us: what was published meanwhile is lost.
                    raise ValueError("the accounts channel reconnected")
            except (*REDIS_ERRORS, OSError, ValueError) as exc:
                log.warning("accounts cache off until Redis answers again: %s", exc)
                self._drop_subscription()
                return None
            return self._generation

    def _subscribe(self) -> None:
        pubsub = self.client.pubsub()
        pubsub.subscribe(self._channel)
        # Wait for the confirmation: before it, changes made elsewhere would go unnoticed.
        confirmed = pubsub.get_message(timeout=2)
        if not confirmed or confirmed.get("type") != "subscribe":
            pubsub.close()
            raise ValueError("subscription to the accounts channel not confirmed")
        self._sock = pubsub.connection._sock
        self._poller = _original_poll()()
        self._poller.register(self._sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        self._pubsub = pubsub
        self._cache.clear()
        self._generation += 1

    def _drop_subscription(self) -> None:
        self._cache.clear()
        self._generation += 1
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS, OSError):
                self._pubsub.close()
            self._pubsub = None

    def _remember(self, generation: int | None, key: str, value: tuple[Any, ...]) -> None:
        """Cache a Redis answer, unless an invalidation arrived while it was being read."""
        if generation is None:
            return
        with self._lock:
            if self._generation == generation and len(self._cache) < CACHE_ENTRIES:
                self._cache[key] = value

    def _invalidate(self) -> None:
        """Tell every process to forget its cached credentials.

        Sent after the change has been made (never in the same pipeline: on a cluster its parts
        go to different nodes in no fixed order), so a process that re-reads on the message
        finds the change. This process forgets at once: its own message may reach its
        subscription only after the next request has read the cache.
        """
        with self._lock:
            self._cache.clear()
            self._generation += 1
        self.client.publish(self._channel, "*")

    # -- users -----------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password_hash: str, created: float) -> bool:
        """Create a user; False if the name is taken."""
        with translate_errors():
            created_now = self.client.hsetnx(self._user(name), "role", role)
            if not created_now:
                return False
            batch = Batch(self.client)
            fields = {"hash": password_hash, "created": repr(created), "disabled": "", "quota": ""}
            batch.command(self._user(name), "hset", mapping=fields)
            batch.command(self._users, "zadd", {name: created})
            batch.execute()
        return True

    def get_user(self, name: str) -> UserRecord | None:
        with translate_errors():
            fields = self.client.hgetall(self._user(name))
        return _decode_user(name, fields)

    def has_users(self) -> bool:
        with translate_errors():
            return bool(self.client.zcard(self._users))

    def list_users(self) -> list[tuple[UserRecord, int]]:
        """Every user with the bytes it holds, oldest first."""
        with translate_errors():
            names = self.client.zrange(self._users, 0, -1)
            batch = Batch(self.client)
            for name in names:
                batch.command(self._user(name), "hgetall")
                batch.command(self._usage(name), "get")
            rows = batch.execute()
        users = []
        for index, name in enumerate(names):
            record = _decode_user(name, rows[2 * index])
            if record is not None:
                users.append((record, int(rows[2 * index + 1] or 0)))
        return users

    def update_user(self, name: str, **fields: str) -> bool:
        """Change some stored fields (role, hash, disabled, quota); False if no such user."""
        with translate_errors():
            if not self.client.exists(self._user(name)):
                return False
            self.client.hset(self._user(name), mapping=fields)
            self._invalidate()
        return True

    def remove_user(self, name: str) -> bool:
        """Forget the user, its tokens, sessions and usage; False if there was no such user."""
        with translate_errors():
            token_ids = list(self.client.smembers(self._user_tokens(name)))
            sessions = list(self.client.smembers(self._user_sessions(name)))
            digests = self._token_digests(token_ids)
            batch = Batch(self.client)
            batch.command(self._user(name), "delete")
            batch.command(self._users, "zrem", name)
            # One slot: the user's own keys share its hash tag.
            batch.command(
                self._usage(name), "delete", self._user_tokens(name), self._user_sessions(name)
            )
            for token_id, digest in zip(token_ids, digests, strict=True):
                batch.command(self._token_id(token_id), "delete")
                if digest:
                    batch.command(self._token(digest), "delete")
            for digest in sessions:
                batch.command(self._session(digest), "delete")
            removed = batch.execute()[0]
            self._invalidate()
        return bool(removed)

    def usage(self, name: str) -> int:
        with translate_errors():
            return int(self.client.get(self._usage(name)) or 0)

    def _token_digests(self, token_ids: list[str]) -> list[str | None]:
        """The digests `tokenid:` keys point to (one key per slot: no cross-slot MGET)."""
        batch = Batch(self.client)
        for token_id in token_ids:
            batch.command(self._token_id(token_id), "get")
        return batch.execute()

    # -- tokens ----------------------------------------------------------------------------
    def add_token(self, digest: str, record: TokenRecord) -> None:
        with translate_errors():
            batch = Batch(self.client)
            batch.command(
                self._token(digest),
                "hset",
                mapping={
                    "id": record.id,
                    "owner": record.owner,
                    "label": record.label,
                    "created": repr(record.created),
                    "expires": "" if record.expires is None else repr(record.expires),
                    "last_used": "",
                    "scopes": encode_scopes(record.scopes),
                },
            )
            batch.command(self._token_id(record.id), "set", digest)
            batch.command(self._user_tokens(record.owner), "sadd", record.id)
            batch.execute()

    def resolve_token(
        self, digest: str, now: float, touch_every: float
    ) -> tuple[str, str, str, str]:
        """(owner, role, token id, scopes) of a usable token, or ("", "", "", "") for any
        refusal.

        Reads the token, then its owner (two keys in two slots: two round trips on a cache
        miss), and records the last use at most once per `touch_every`.
        """
        generation = self._fresh()
        cached = self._cache.get("t:" + digest) if generation is not None else None
        if cached is not None:
            owner, role, token_id, scopes, expires, checked = cached
            if (expires is None or expires > now) and now - checked < touch_every:
                return owner, role, token_id, scopes
        key = self._token(digest)
        with translate_errors():
            owner, raw_expires, last_used, token_id, scopes = self.client.hmget(
                key, "owner", "expires", "last_used", "id", "scopes"
            )
            if not owner or (raw_expires and float(raw_expires) <= now):
                return "", "", "", ""
            role = self._enabled_role(owner)
            if not role:
                return "", "", "", ""
            if not last_used or now - float(last_used) >= touch_every:
                self._touch_token(keys=[key], args=[repr(now), repr(touch_every)])
        expires = float(raw_expires) if raw_expires else None
        scopes = scopes or ""
        self._remember(generation, "t:" + digest, (owner, role, token_id, scopes, expires, now))
        return owner, role, token_id, scopes

    def _enabled_role(self, name: str) -> str:
        """The user's role, or "" if there is no such user or it is disabled."""
        role, disabled = self.client.hmget(self._user(name), "role", "disabled")
        return "" if not role or disabled == "1" else str(role)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with translate_errors():
            digest = self.client.get(self._token_id(token_id))
            if not digest:
                return None
            fields = self.client.hgetall(self._token(digest))
        return _decode_token(fields)

    def list_tokens(self, owner: str) -> list[TokenRecord]:
        with translate_errors():
            ids = sorted(self.client.smembers(self._user_tokens(owner)))
            digests = self._token_digests(ids)
            batch = Batch(self.client)
            for digest in digests:
                batch.command(self._token(digest or "-"), "hgetall")
            rows = batch.execute()
        tokens = [token for row in rows if (token := _decode_token(row))]
        return sorted(tokens, key=lambda token: token.created)

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Delete the token; its record as it was, or None if there was none."""
        record = self.get_token(token_id)
        if record is None:
            return None
        with translate_errors():
            digest = self.client.get(self._token_id(token_id))
            batch = Batch(self.client)
            batch.command(self._token_id(token_id), "delete")
            if digest:
                batch.command(self._token(digest), "delete")
            batch.command(self._user_tokens(record.owner), "srem", token_id)
            batch.execute()
            self._invalidate()
        return record

    # -- sessions --------------------------------------------------------------------------
    def add_session(self, digest: str, user: str, created: float, expires: float) -> None:
        key = self._session(digest)
        with translate_errors():
            batch = Batch(self.client)
            fields = {"user": user, "created": repr(created), "expires": repr(expires)}
            batch.command(key, "hset", mapping=fields)
            batch.command(key, "expireat", math.ceil(expires))
            batch.command(self._user_sessions(user), "sadd", digest)
            batch.execute()

    def resolve_session(self, digest: str, now: float) -> tuple[str, str]:
        """(user, role) of a live session of an enabled user, or ("", "")."""
        generation = self._fresh()
        cached = self._cache.get("s:" + digest) if generation is not None else None
        if cached is not None:
            user, role, expires, checked = cached
            if expires > now and now - checked < SESSION_RECHECK:
                return user, role
        with translate_errors():
            user, raw_expires = self.client.hmget(self._session(digest), "user", "expires")
            if not user or not raw_expires or float(raw_expires) <= now:
                return "", ""
            role = self._enabled_role(user)
        if not role:
            return "", ""
        self._remember(generation, "s:" + digest, (user, role, float(raw_expires), now))
        return user, role

    def remove_session(self, digest: str) -> None:
        with translate_errors():
            user = self.client.hget(self._session(digest), "user")
            batch = Batch(self.client)
            batch.command(self._session(digest), "delete")
            if user:
                batch.command(self._user_sessions(user), "srem", digest)
            batch.execute()
            self._invalidate()

    def end_sessions(self, user: str) -> int:
        """End every session of the user (logout everywhere); how many there were."""
        with translate_errors():
            digests = list(self.client.smembers(self._user_sessions(user)))
            batch = Batch(self.client)
            for digest in digests:
                batch.command(self._session(digest), "delete")
            batch.command(self._user_sessions(user), "delete")
            batch.execute()
            self._invalidate()
        return len(digests)

    # -- failed logins ---------------------------------------------------------------------
    def login_failures(self, kind: str, key: str) -> tuple[int, int]:
        """(failures in the current window, seconds until it ends)."""
        with translate_errors():
            batch = Batch(self.client)
            batch.command(self._login(kind, key), "get")
            batch.command(self._login(kind, key), "ttl")
            count, ttl = batch.execute()
        return int(count or 0), max(int(ttl), 0)

    def count_login_failure(self, kind: str, key: str, window: int) -> int:
        with translate_errors():
            return int(self._count(keys=[self._login(kind, key)], args=[window]))

    def clear_login_failures(self, kind: str, key: str) -> None:
        with translate_errors():
            self.client.delete(self._login(kind, key))

    # -- quotas ----------------------------------------------------------------------------
    def reserve(self, owner: str, size: int, default_quota: int, exempt: bool) -> tuple[bool, int]:
        """Count `size` more bytes for `owner` if they fit its quota, atomically.

        Returns (reserved, bytes left); bytes left is -1 when the owner has no limit.
        """
        size = min(size, COUNTED_MAX)
        with translate_errors():
            ok, left = self._reserve(
                keys=[self._usage(owner), self._user(owner)],
                args=[size, default_quota, "1" if exempt else "0"],
            )
        return bool(ok), int(left)

    def release(self, owner: str, size: int) -> None:
        """Count `size` fewer bytes for `owner` (never below zero)."""
        if size <= 0:
            return
        size = min(size, COUNTED_MAX)
        with translate_errors():
            self._release(keys=[self._usage(owner)], args=[size])

    # -- grants ----------------------------------------------------------------------------
    def use_grant(self, grant_id: str, limit: int, expires: float) -> bool:
        """Count one more upload made with a grant; False once it has made `limit` uploads."""
        with translate_errors():
            count = self._use_grant(
                keys=[self._grant_uses(grant_id)], args=[limit, math.ceil(expires) + 60]
            )
        return bool(count)


def _decode_user(name: str, fields: dict[str, Any]) -> UserRecord | None:
    if not fields or "role" not in fields or "created" not in fields:
        return None
    quota = fields.get("quota") or ""
    return UserRecord(
        name=name,
        role=fields["role"],
        password_hash=fields.get("hash") or "",
        created=float(fields["created"]),
        disabled=fields.get("disabled") == "1",
        quota=int(quota) if quota else None,
    )


def _decode_token(fields: dict[str, Any]) -> TokenRecord | None:
    if not fields or "id" not in fields:
        return None
    return TokenRecord(
        id=fields["id"],
        owner=fields["owner"],
        label=fields.get("label") or "",
        created=float(fields.get("created") or 0),
        expires=float(fields["expires"]) if fields.get("expires") else None,
        last_used=float(fields["last_used"]) if fields.get("last_used") else None,
        scopes=decode_scopes(fields.get("scopes")),
    )
