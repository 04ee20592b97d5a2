"""`GET /api/openapi.json`: the OpenAPI 3.1 description of the JSON API (public)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..openapi import openapi_document
from .common import service

bp = Blueprint("openapi", __name__)


@bp.get("/api/openapi.json")
def document() -> Response:
    response = jsonify(openapi_document(service().settings))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
