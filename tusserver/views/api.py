"""The JSON API under /api/: list, inspect, rename and delete uploads; health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from ..auth.accounts import NAME_PATTERN
from ..errors import BackendUnavailable, BadRequest
from ..models import UploadInfo
from ..tags import THUMBNAIL_KEY, tags_of
from .common import download_url, principal, service, upload_url
from .json_body import read_json_object
from .list_query import FILTERS, parse_query

bp = Blueprint("api", __name__, url_prefix="/api")

MAX_PAGE = 200


def upload_json(info: UploadInfo) -> dict[str, Any]:
    """The public view of an upload."""
    return {
        "id": info.id,
        "filename": info.filename,
        "filetype": info.filetype,
        "size": info.length,
        "offset": info.offset,
        "complete": info.is_complete,
        "created": _iso(info.created),
        "updated": _iso(info.updated),
        "expires": _iso(info.expires) if info.expires and not info.is_complete else None,
        "metadata": info.metadata,
        "tags": list(tags_of(info.metadata)),
        "thumbnail": info.metadata.get(THUMBNAIL_KEY) or None,
        "owner": info.owner,
        "url": upload_url(info.id),
        "download_url": download_url(info.id),
    }


@bp.get("/uploads")
def list_uploads() -> Response:
    """The caller's uploads: `?limit=` (1-200, default 50), `?offset=`, the filters and `sort=`
    of views/list_query.py (newest first by default), and for admins `?owner=` (everyone's
    without it)."""
    limit = _int_arg("limit", 50, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 10**9)
    owner = request.args.get("owner") or None
    if owner is not None and not NAME_PATTERN.fullmatch(owner):
        raise BadRequest("owner must be a user name")
    query = parse_query(request.args)
    page = service().list(principal(), limit, offset, owner, query)
    following = offset + limit
    extra: dict[str, Any] = {"owner": owner} if owner else {}
    for name in FILTERS:
        if values := [v for v in request.args.getlist(name) if v != ""]:
            extra[name] = values
    next_url = (
        url_for("api.list_uploads", limit=limit, offset=following, _external=True, **extra)
        if following < page.total
        else None
    )
    return jsonify(
        uploads=[upload_json(info) for info in page.uploads],
        total=page.total,
        limit=limit,
        offset=offset,
        next=next_url,
    )


@bp.get("/uploads/<upload_id>")
def get_upload(upload_id: str) -> Response:
    return jsonify(upload_json(service().info(upload_id, principal())))


@bp.patch("/uploads/<upload_id>")
def change_upload(upload_id: str) -> Response:
    """Rename and/or retag: `{"filename": "new name", "tags": ["a", "b"]}` (either key)."""
    example = '{"filename": "new name", "tags": ["a", "b"]}'
    body = read_json_object(example)
    filename, tags = body.get("filename"), body.get("tags")
    if filename is None and tags is None:
        raise BadRequest(f"expected a JSON object like {example}")
    if filename is not None and not isinstance(filename, str):
        raise BadRequest("filename must be a string")
    if tags is not None and not isinstance(tags, list):
        raise BadRequest("tags must be a list of strings")
    # The service checks the rename/tag scope after ownership: a stranger's upload stays a 404.
    who = principal()
    return jsonify(upload_json(service().change(upload_id, who, filename=filename, tags=tags)))


@bp.delete("/uploads/<upload_id>")
def delete_upload(upload_id: str) -> Response:
    service().terminate(upload_id, principal())
    return Response(status=204)


@bp.get("/health")
def health() -> Response:
    """200 when Redis and the data store answer, 503 otherwise, with each one's status."""
    report = service().health()
    healthy = all(status == "ok" for status in report.values())
    response = jsonify(status="ok" if healthy else "unavailable", checks=report)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    if not healthy:
        # A load balancer or client polling health backs off like any other 503's reader.
        response.headers["Retry-After"] = BackendUnavailable.RETRY_AFTER
    return response


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
