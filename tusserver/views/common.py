"""What every blueprint shares: the service accessor, URLs, and the one error renderer."""

from __future__ import annotations

import logging

from flask import Response, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from ..auth.principal import Principal
from ..auth.resolve import current_principal
from ..errors import TusError
from ..logsafe import escape
from ..protocol import TUS_VERSION
from ..service import UploadService
from .problem import render_problem, request_draft

log = logging.getLogger(__name__)

TUS_PATH = "/files/"


def service() -> UploadService:
    """The app's `UploadService` (wired by `create_app`)."""
    return current_app.extensions["tusserver"].service


def principal() -> Principal:
    """Who this request acts for (resolved before the view ran)."""
    return current_principal()


def upload_url(upload_id: str) -> str:
    """The absolute URL of an upload (honours X-Forwarded-* when behind a trusted proxy)."""
    return url_for("tus.head", upload_id=upload_id, _external=True)


def download_url(upload_id: str) -> str:
    """Where the upload's bytes are fetched: on `TUSSERVER_DOWNLOAD_ORIGIN` when one is set, so
    user content is served from an origin that holds no session and runs none of our pages."""
    origin = service().settings.download_origin
    if origin:
        return origin + url_for("tus.head", upload_id=upload_id)
    return upload_url(upload_id)


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def is_tus_request() -> bool:
    return request.path.startswith(TUS_PATH)


def render_error(error: TusError) -> Response:
    """Render a catalogue error: JSON under /api/, no body for HEAD, else text/plain."""
    g.error_code = error.code
    draft = request_draft()
    if draft is not None and not is_api_request():
        return render_problem(error, draft)  # an IETF draft client: RFC 9457 problem details
    if is_api_request():
        response = jsonify(error={"code": error.code, "message": error.message})
    elif request.method == "HEAD":
        response = Response(status=error.status)
    else:
        response = Response(f"{error.code}: {error.message}\n", mimetype="text/plain")
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    if is_tus_request():
        response.headers["Tus-Resumable"] = TUS_VERSION
    return response


def render_http_exception(exc: HTTPException) -> Response:
    """Werkzeug's own errors (unknown route, wrong method...) in the same format."""
    error = TusError(exc.description or exc.name)
    error.status = exc.code or 500
    error.code = (exc.name or "error").lower().replace(" ", "-")
    response = render_error(error)
    if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def render_unexpected(exc: Exception) -> Response:
    """A bug: log the traceback, tell the client nothing but that it failed."""
    if isinstance(exc, HTTPException):
        return render_http_exception(exc)
    log.exception("unhandled error on %s %s", escape(request.method), escape(request.path))
    return render_error(TusError())
