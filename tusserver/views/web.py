"""Serves the browser client from `webclient/` at `/`."""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

from .common import service

bp = Blueprint("web", __name__)


@bp.get("/")
def index() -> Response:
    return _send("index.html")


@bp.get("/<path:filename>")
def asset(filename: str) -> Response:
    """Any file of the client; `send_from_directory` refuses paths that leave the folder."""
    return _send(filename)


def _send(filename: str) -> Response:
    response = send_from_directory(service().settings.webclient_dir, filename, max_age=0)
    response.headers.setdefault("Cache-Control", "no-cache")
    return response
