"""`create_app`: builds the Flask app and wires the components into `app.extensions`.

Nothing is global: every component (Redis client, state, data store, locks, hooks, service) is
made here or passed in, so tests can build as many independent apps as they like.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import metrics
from .auth.accounts import Accounts
from .auth.jwt import JwtVerifier
from .auth.resolve import resolve_request
from .auth.signed import load_or_create_secret_key
from .client_limits import ForwardedClientLimit
from .errors import TusError
from .events import FileEvents
from .hooks import ChainedHooks, Hooks, hooks_from_settings
from .keepalive import SettleBody
from .locks.keeper import LockKeeper
from .locks.redis import LockManager
from .origins import cors_allow_list
from .protocol import safe_header_value
from .request_log import FACTS_KEY, RequestFacts, RequestLog
from .service import UploadService
from .settings import Settings
from .state.accounts import AccountStore
from .state.connect import connect_settings
from .state.links import LinkState
from .state.redis import RedisState
from .storage.base import DataStore
from .views import account_api, api, download, files_api, ietf, links, openapi, tus, web
from .views import metrics as metrics_view
from .views.common import render_error, render_http_exception, render_unexpected
from .views.events import bp as events_bp

MAX_PARSED_BODY = 64 * 1024
"""The largest request body Flask itself may read (JSON API requests); larger ones get 413."""

OVERRIDABLE_METHODS = {"PATCH", "DELETE", "HEAD", "OPTIONS", "GET", "POST"}


@dataclass
class Components:
    """Everything a request handler may need, kept in `app.extensions['tusserver']`."""

    settings: Settings
    redis: redis.Redis
    state: RedisState
    store: DataStore
    locks: LockManager
    keeper: LockKeeper
    service: UploadService
    accounts: Accounts
    secret_key: bytes
    """Signs download links and upload grants (`auth/signed.py`)."""
    links: LinkState
    jwt: JwtVerifier | None = None
    """Verifies bearer JWTs; None unless a JWKS URL or an HS256 secret is configured."""
    events: FileEvents | None = None
    """Live updates (`events/`): the event publisher and this process's subscription; None
    when `TUSSERVER_EVENTS_ENABLED` is off."""


class MethodOverride:
    """`X-HTTP-Method-Override` on POST, for clients and proxies limited to GET and POST.

    A POST overridden to HEAD is answered with the HEAD's headers and `Content-Length: 0`: on
    the wire it is still a POST, whose response has a body, and a HEAD's `Content-Length` (the
    size of the file a GET would send) would leave the client waiting for bytes that never come.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").strip().upper()
        if environ.get("REQUEST_METHOD") == "POST" and override in OVERRIDABLE_METHODS:
            environ["REQUEST_METHOD"] = override
            if override == "HEAD":
                return self.app(environ, _with_empty_body(start_response))
        return self.app(environ, start_response)


def _with_empty_body(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """A `start_response` that announces an empty body, whatever the app said."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
        return start_response(status, [*kept, ("Content-Length", "0")], exc_info)

    return start


def make_store(settings: Settings) -> DataStore:
    """The data store the settings name."""
    if settings.storage == "s3":
        from .storage.s3 import S3Store

        store = S3Store(settings)
        store.ensure_bucket()
        return store
    from .storage.local import LocalStore

    return LocalStore(settings.uploads_dir, fsync=settings.fsync, splice=settings.splice)


def create_app(
    settings: Settings | None = None,
    *,
    redis_client: redis.Redis | None = None,
    store: DataStore | None = None,
    hooks: Hooks | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the app. Components not given are made from the settings."""
    settings = settings or Settings.from_env()
    client = redis_client or connect_settings(settings)
    state = RedisState(
        client,
        settings.redis_prefix,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout,
    )
    store = metrics.TimedStore(store or make_store(settings))
    locks = LockManager(state, settings.lock_ttl, settings.lock_wait)
    keeper = LockKeeper(settings.read_timeout)
    receivers: list[Hooks] = [
        metrics.MetricsHooks(),
        *hooks_from_settings(settings, metrics.record_hook),
    ]
    if hooks is not None:
        receivers.append(hooks)
    accounts = Accounts(AccountStore(client, settings.redis_prefix), settings, clock)
    events = FileEvents.from_settings(settings, client) if settings.events_enabled else None
    service = UploadService(
        settings,
        state,
        store,
        locks,
        keeper,
        hooks=ChainedHooks(receivers),
        clock=clock,
        accounts=accounts,
        events=events,
    )

    app = Flask(__name__, static_folder=None)
    # Bodies Flask parses itself (the JSON API) are small; upload bodies never go through Flask's
    # request.stream (the tus views stream wsgi.input), so this limit does not apply to them.
    app.config["MAX_CONTENT_LENGTH"] = MAX_PARSED_BODY
    app.extensions["tusserver"] = Components(
        settings,
        client,
        state,
        store,
        locks,
        keeper,
        service,
        accounts,
        secret_key=load_or_create_secret_key(settings),
        links=LinkState(client, settings.redis_prefix),
        jwt=JwtVerifier(settings) if settings.jwt_enabled else None,
        events=events,
    )
    app.register_blueprint(tus.bp)
    app.register_blueprint(download.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(files_api.bp)
    app.register_blueprint(account_api.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(metrics_view.bp)
    app.register_blueprint(events_bp)
    app.register_blueprint(web.bp)
    app.register_error_handler(TusError, render_error)
    app.register_error_handler(HTTPException, render_http_exception)
    app.register_error_handler(Exception, render_unexpected)
    app.before_request(_start_request)
    app.before_request(resolve_request)  # after the request id exists, before any view
    app.after_request(_finish_request)
    # After _start_request: IETF draft requests are answered from a before-request hook.
    app.register_blueprint(ietf.bp)
    if settings.cors_origins:
        _enable_cors(app, settings)

    wsgi: Any = MethodOverride(app.wsgi_app)
    if settings.behind_proxy:
        if settings.max_connections_per_client:
            wsgi = ForwardedClientLimit(wsgi, settings.max_connections_per_client)
        wsgi = ProxyFix(wsgi, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
    # Whatever the route or status, a body left unread is settled before the response
    # headers go out (see keepalive.py).
    wsgi = SettleBody(wsgi)
    # Outside everything: the request line is written once the response has finished.
    wsgi = RequestLog(wsgi)
    app.wsgi_app = wsgi  # type: ignore[method-assign]
    return app


TUS_REQUEST_HEADERS = [
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "Upload-Draft-Interop-Version",
    "Upload-Complete",
    "Content-Digest",
    "Repr-Digest",
    "Want-Repr-Digest",
    "Content-Disposition",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "X-Requested-With",
    "Authorization",
    "Content-Type",
]
TUS_RESPONSE_HEADERS = [
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Concat",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Complete",
    "Upload-Limit",
    "Upload-Draft-Interop-Version",
    "Accept-Patch",
    "Repr-Digest",
    "X-Request-ID",
    "Content-Disposition",
    "Content-Range",
]


def _enable_cors(app: Flask, settings: Settings) -> None:
    """Cross-origin uploads for the configured origins, on every response (errors included)."""
    from flask_cors import CORS

    allowed = cors_allow_list(settings.cors_origins)
    CORS(
        app,
        origins=allowed,
        # The page hosted on a listed origin signs in with the session cookie. Never for `*`:
        # that would let every site on the web act with a signed-in user's cookie.
        supports_credentials=allowed != "*",
        methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=TUS_REQUEST_HEADERS,
        expose_headers=TUS_RESPONSE_HEADERS,
        max_age=settings.cors_max_age,
        vary_header=True,
    )


def _start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = safe_header_value(incoming, 128) if incoming else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    """Security headers on every response; what the request log needs to know about it.

    The line itself is written by `RequestLog` when the response has been sent (see
    request_log.py), so that it tells what the client actually got.
    """
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Request-ID"] = g.get("request_id", "")
    body = g.get("body")
    request.environ[FACTS_KEY] = RequestFacts(
        upload_id=(request.view_args or {}).get("upload_id", "-"),
        received=body.received if body is not None else 0,
        request_id=g.get("request_id", "-"),
        download=g.get("bytes_sent") is not None,
        streamed=not response.is_sequence,
    )
    return response
