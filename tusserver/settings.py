"""The server's configuration: one frozen `Settings`, read once from `TUSSERVER_*` variables.

`Settings.from_env()` is the only reader of `os.environ` in the package. Every value is parsed and
validated at start-up, and an unknown `TUSSERVER_*` name is an error: a typo in a deployment
(`TUSSERVER_FSNYC=false`) must stop the server, not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .origins import origin_problem
from .state.addresses import MODES as REDIS_MODES
from .state.addresses import parse_sentinels

PREFIX = "TUSSERVER_"
MiB = 1024 * 1024

HOOK_EVENTS = (
    "pre-create",
    "post-create",
    "post-receive",
    "post-finish",
    "pre-terminate",
    "post-terminate",
)

WORKER_CLASSES = ("gevent", "gthread")


class SettingsError(ValueError):
    """A `TUSSERVER_*` variable is unknown or has a value that cannot be used."""


def _default_webclient_dir() -> Path:
    """The `webclient/` folder beside the package (a source checkout or the Docker image)."""
    return Path(__file__).resolve().parent.parent / "webclient"


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Field `x` is read from `TUSSERVER_X`."""

    data_dir: Path = Path("data")
    redis_url: str = ""
    redis_prefix: str = "tusserver:"
    # Redis topology (tusserver/state/connect.py): single | cluster | sentinel
    redis_mode: str = "single"
    redis_password: str = field(default="", repr=False)
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = ""
    redis_sentinel_password: str = field(default="", repr=False)
    # Commits wait for this many replicas (WAIT), up to this many ms (state/replication.py)
    redis_wait_replicas: int = 0
    redis_wait_timeout: int = 1000
    storage: str = "local"
    fsync: bool = True
    splice: bool = True
    """Local store: move request bodies socket -> file with splice(2) where possible."""
    max_size: int = 0
    max_metadata_size: int = 4096
    json_upload_max: int = 10 * MiB
    """Largest decoded file `POST /api/files` takes and `/api/uploads/<id>/content` returns."""
    expire_after: int = 86400
    cleanup_interval: int = 300
    gone_ttl: int = 7 * 86400
    read_chunk_size: int = MiB
    lock_ttl: int = 30
    lock_wait: float = 5.0
    read_timeout: int = 60
    shutdown_timeout: int = 25
    behind_proxy: bool = False
    interim_responses: str = "auto"
    # Concurrency and slow-client defence (see tusserver/worker.py)
    worker_class: str = "gevent"
    worker_connections: int = 10000
    keepalive_timeout: float = 75.0
    header_timeout: float = 10.0
    min_rate: int = 1024
    min_rate_window: float = 60.0
    max_connections_per_client: int = 0
    log_level: str = "INFO"
    webclient_dir: Path = field(default_factory=_default_webclient_dir)
    # S3 / MinIO data store
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "tusserver"
    s3_region: str = ""
    s3_secure: bool = True
    s3_prefix: str = ""
    s3_part_size: int = 8 * MiB
    # Cross-origin uploads
    cors_origins: tuple[str, ...] = ()
    cors_max_age: int = 86400
    # Hooks
    hooks_url: str = ""
    hooks_enabled: tuple[str, ...] = HOOK_EVENTS
    hooks_python: str = ""
    hooks_timeout: float = 5.0
    hooks_retries: int = 2
    hooks_receive_interval: float = 1.0
    # Metrics
    metrics_enabled: bool = True
    metrics_dir: Path | None = None
    # Accounts and access
    auth: str = "required"
    admin_password: str = ""
    default_quota: int = 0
    session_lifetime: int = 7 * 86400
    # Signed download links, upload grants, JWTs
    secret_key: str = ""
    download_origin: str = ""
    link_max_lifetime: int = 30 * 86400
    grant_max_lifetime: int = 30 * 86400
    jwt_jwks_url: str = ""
    jwt_secret: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_role_claim: str = ""
    # Live updates: file events over Server-Sent Events (tusserver/events/)
    events_enabled: bool = True
    events_max_streams: int = 2000
    events_heartbeat: float = 15.0
    events_progress_interval: float = 1.0
    events_retain: int = 1000
    events_retain_all: int = 10000

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `TUSSERVER_*` variables (default: `os.environ`) plus overrides."""
        environ = os.environ if environ is None else environ
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, raw in environ.items():
            if not name.startswith(PREFIX):
                continue
            key = name[len(PREFIX) :].lower()
            if key not in fields:
                raise SettingsError(f"unknown setting {name}")
            values[key] = _parse(name, fields[key].type, raw)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def sends_interim_responses(self) -> bool:
        """Whether IETF draft clients get `104 Upload Resumption Supported`.

        "auto" sends it unless the server is behind a proxy: nginx (1.22 measured) passes a 104
        on as if it were the final response and the real one then arrives as its body.
        """
        value = self.interim_responses.strip().lower()
        if value == "auto":
            return not self.behind_proxy
        return value in _TRUE

    @property
    def uploads_dir(self) -> Path:
        """Where the local data store keeps upload files."""
        return self.data_dir / "uploads"

    @property
    def redis_dir(self) -> Path:
        """Where the embedded Redis-compatible server keeps its append-only file."""
        return self.data_dir / "redis"

    def _validate(self) -> None:
        self._validate_redis()
        if self.storage not in ("local", "s3"):
            raise SettingsError(f"TUSSERVER_STORAGE must be 'local' or 's3', not {self.storage!r}")
        if self.storage == "s3" and not self.s3_endpoint:
            raise SettingsError("TUSSERVER_STORAGE=s3 needs TUSSERVER_S3_ENDPOINT")
        positive = (
            "max_metadata_size",
            "json_upload_max",
            "expire_after",
            "cleanup_interval",
            "read_chunk_size",
            "lock_ttl",
            "read_timeout",
            "s3_part_size",
            "hooks_timeout",
            "worker_connections",
            "keepalive_timeout",
            "header_timeout",
            "min_rate_window",
            "session_lifetime",
            "link_max_lifetime",
            "grant_max_lifetime",
            "events_heartbeat",
            "events_retain",
            "events_retain_all",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be greater than 0")
        non_negative = (
            "max_size",
            "lock_wait",
            "shutdown_timeout",
            "hooks_retries",
            "gone_ttl",
            "cors_max_age",
            "hooks_receive_interval",
            "min_rate",
            "max_connections_per_client",
            "default_quota",
            "events_max_streams",
            "events_progress_interval",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must not be negative")
        if self.worker_class not in WORKER_CLASSES:
            raise SettingsError(
                f"TUSSERVER_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}, "
                f"not {self.worker_class!r}"
            )
        if self.s3_part_size < 5 * 1024 and self.storage == "s3":
            raise SettingsError("TUSSERVER_S3_PART_SIZE must be at least 5 KiB")
        unknown = set(self.hooks_enabled) - set(HOOK_EVENTS)
        if unknown:
            raise SettingsError(
                f"TUSSERVER_HOOKS_ENABLED has unknown events {sorted(unknown)}; "
                f"known: {', '.join(HOOK_EVENTS)}"
            )
        if self.interim_responses.strip().lower() not in {"auto", *_TRUE, *_FALSE}:
            raise SettingsError(
                f"TUSSERVER_INTERIM_RESPONSES must be auto, true or false, "
                f"not {self.interim_responses!r}"
            )
        for origin in self.cors_origins:
            problem = origin_problem(origin)
            if problem:
                raise SettingsError(f"TUSSERVER_CORS_ORIGINS: {origin!r}: {problem}")
        if self.auth not in ("required", "none"):
            raise SettingsError(f"TUSSERVER_AUTH must be 'required' or 'none', not {self.auth!r}")
        self._validate_signing()
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"TUSSERVER_LOG_LEVEL {self.log_level!r} is not a log level")

    def _validate_redis(self) -> None:
        if self.redis_mode not in REDIS_MODES:
            raise SettingsError(
                f"TUSSERVER_REDIS_MODE must be one of {', '.join(REDIS_MODES)}, "
                f"not {self.redis_mode!r}"
            )
        if self.redis_mode == "cluster" and not self.redis_url:
            raise SettingsError("TUSSERVER_REDIS_MODE=cluster needs TUSSERVER_REDIS_URL (any node)")
        if self.redis_mode != "cluster" and "," in self.redis_url:
            raise SettingsError(
                "TUSSERVER_REDIS_URL names several servers only with TUSSERVER_REDIS_MODE=cluster"
            )
        if self.redis_mode == "sentinel":
            if not self.redis_sentinels or not self.redis_sentinel_master:
                raise SettingsError(
                    "TUSSERVER_REDIS_MODE=sentinel needs TUSSERVER_REDIS_SENTINELS and "
                    "TUSSERVER_REDIS_SENTINEL_MASTER"
                )
            try:
                parse_sentinels(self.redis_sentinels)
            except ValueError as exc:
                raise SettingsError(f"TUSSERVER_REDIS_SENTINELS: {exc}") from None
        if self.redis_wait_replicas < 0:
            raise SettingsError("TUSSERVER_REDIS_WAIT_REPLICAS must be 0 (off) or more")
        if self.redis_wait_timeout < 1:
            # WAIT's 0 means "block forever": a commit must never hang on a lost replica.
            raise SettingsError("TUSSERVER_REDIS_WAIT_TIMEOUT must be at least 1 (milliseconds)")

    def _validate_signing(self) -> None:
        if self.secret_key and len(self.secret_key) < MIN_SECRET_KEY:
            raise SettingsError(
                f"TUSSERVER_SECRET_KEY must be at least {MIN_SECRET_KEY} characters "
                "(e.g. the output of `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        if self.download_origin and not _ORIGIN.fullmatch(self.download_origin):
            raise SettingsError(
                f"TUSSERVER_DOWNLOAD_ORIGIN {self.download_origin!r} must be an origin like "
                "https://files.example.com (scheme, host and optional port; no path)"
            )
        if self.jwt_jwks_url and self.jwt_secret:
            raise SettingsError("set TUSSERVER_JWT_JWKS_URL or TUSSERVER_JWT_SECRET, not both")
        if self.jwt_secret and len(self.jwt_secret) < MIN_SECRET_KEY:
            raise SettingsError(
                f"TUSSERVER_JWT_SECRET must be at least {MIN_SECRET_KEY} characters"
            )
        if self.jwt_jwks_url and not self.jwt_jwks_url.startswith(("https://", "http://")):
            raise SettingsError("TUSSERVER_JWT_JWKS_URL must be an http(s) URL")
        if (self.jwt_jwks_url or self.jwt_secret) and not self.jwt_audience:
            # Without an audience check, any token the identity provider issued for any other
            # application would be accepted here.
            raise SettingsError("JWT verification needs TUSSERVER_JWT_AUDIENCE")

    @property
    def jwt_enabled(self) -> bool:
        """Whether bearer JWTs are accepted (a JWKS URL or an HS256 secret is configured)."""
        return bool(self.jwt_jwks_url or self.jwt_secret)


MIN_SECRET_KEY = 32
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}  # empty is an error: `FSYNC=` must not mean off
_SIZE_SUFFIXES = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _parse(name: str, annotation: Any, raw: str) -> Any:
    """Turn one environment string into the field's type, or explain why it cannot be."""
    kind = str(annotation)
    value = raw.strip()
    try:
        if kind == "bool":
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind == "int":
            return parse_size(value)
        if kind == "float":
            number = float(value)
            if not math.isfinite(number):  # nan would pass every range check
                raise ValueError("expected a finite number")
            return number
        if kind.startswith("Path"):
            if value:
                return Path(value)
            if "None" not in kind:  # an empty data_dir would fail much later, obscurely
                raise ValueError("expected a path")
            return None
        if kind.startswith("tuple"):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None


def parse_size(value: str) -> int:
    """An integer, optionally with a binary suffix: `8M`, `1G`, `512k`, `4GiB`."""
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    multiplier = 1
    if text and text[-1] in _SIZE_SUFFIXES:
        multiplier = _SIZE_SUFFIXES[text[-1]]
        text = text[:-1]
    if not text.isascii() or not text.isdigit():
        raise ValueError("expected a whole number, optionally with a K/M/G/T suffix")
    return int(text) * multiplier
