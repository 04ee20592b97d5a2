"""Serves the browser client from `webclient/` at `/`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, send_from_directory
from werkzeug.routing import PathConverter

from .common import service

bp = Blueprint("web", __name__)

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; object-src 'none'; "
    "base-uri 'none'"
)
"""`img-src data:` lets the file table show thumbnails, which are data URLs in metadata."""
"""The page's Content-Security-Policy: its own scripts, styles and API only, never framed.

Even if something did slip a `javascript:` URL or markup into the page, no inline script runs and
nothing is sent to another origin; `frame-ancestors 'none'` stops clickjacking of the delete and
admin buttons. The page therefore has no inline script or style, and no `style=` attribute.
"""


class AssetConverter(PathConverter):
    """A path outside the server's own namespaces, `/files/` (tus) and `/api/`.

    Without this the client's catch-all route would claim every unknown path under those
    namespaces, so that e.g. a PATCH to `/files/a/b` answered 405 (only GET allowed) instead of
    404, and a GET of it went looking in the client folder.
    """

    regex = r"(?!(?:files|api)(?:/|$))[^/].*?"


@bp.record_once
def _register_converter(state: Any) -> None:
    state.app.url_map.converters["asset"] = AssetConverter


@bp.get("/")
def index() -> Response:
    return _send("index.html")


@bp.get("/<asset:filename>")
def asset(filename: str) -> Response:
    """Any file of the client; `send_from_directory` refuses paths that leave the folder."""
    return _send(filename)


def _send(filename: str) -> Response:
    response = send_from_directory(service().settings.webclient_dir, filename, max_age=0)
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response
