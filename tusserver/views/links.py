"""Signed download links and upload grants: creating them, revoking links, and the link route.

- `POST /api/uploads/<id>/links` `{"expires_in": s}` -> 201 `{"url", "expires"}` (owner or admin)
- `DELETE /api/uploads/<id>/links` -> 204: rotates the upload's link secret, so every link dies
- `GET|HEAD /links/<id>?expires=<unix>&signature=<mac>`: the download, with no credential, with
  exactly the Range/ETag/304/safe-header behaviour of `GET /files/<id>` (same functions)
- `POST /api/grants` -> 201 `{"grant", "expires", "uploads", "max_size"}`

The signature travels in the query string, never in the path, because the request log records
the path only. A link that is tampered with, expired or revoked gets a bare 403: the holder learns
nothing about which check failed or whether the upload exists.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from ..auth.events import log_security_event
from ..auth.principal import Grant, Principal
from ..auth.scopes import FIXED_SCOPES, require_scope
from ..auth.signed import issue_grant, new_grant_id, new_link_secret, sign_link, verify_link
from ..errors import BadRequest, Forbidden, UploadIncomplete, UploadNotFound
from ..models import UploadInfo
from ..protocol import is_upload_id
from .common import principal, service
from .download import send_download
from .json_body import read_json_object

bp = Blueprint("links", __name__)

MAX_GRANT_UPLOADS = 1000
MAX_GRANT_METADATA_PAIRS = 32
_MAX_JSON_INT = 2**53 - 1


class InvalidLink(Forbidden):
    code, default_message = "invalid-link", "This link is invalid, expired or revoked"


# -- links -----------------------------------------------------------------------------------
@bp.post("/api/uploads/<upload_id>/links")
def create_link(upload_id: str) -> Response:
    """A signed URL that downloads the upload with no credential until `expires_in` runs out."""
    settings = service().settings
    body = _json_body('{"expires_in": 3600}')
    expires_in = _int_field(body, "expires_in", 1, settings.link_max_lifetime)
    info = _owned_upload(upload_id)
    if not info.is_complete:
        raise UploadIncomplete("only a complete upload can be shared by link")
    components = current_app.extensions["tusserver"]
    link_secret = components.links.link_secret_for(info.id, expires_in, new_link_secret)
    expires = int(time.time()) + expires_in
    signature = sign_link(components.secret_key, info.id, expires, link_secret)
    url = _link_url(info.id, expires, signature)
    log_security_event("link-created", upload=info.id, owner=info.owner, expires=expires)
    response = jsonify(url=url, expires=_iso(expires))
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/api/uploads/<upload_id>/links")
def revoke_links(upload_id: str) -> Response:
    """Revoke every link of the upload made so far (new links can be made afterwards)."""
    info = _owned_upload(upload_id)
    current_app.extensions["tusserver"].links.revoke_links(info.id)
    log_security_event("links-revoked", upload=info.id, owner=info.owner)
    return Response(status=204)


@bp.route("/links/<upload_id>", methods=["GET", "HEAD"])
def link_download(upload_id: str) -> Response:
    """Download through a signed link: 403 unless the signature, expiry and secret all hold."""
    _verified_link(upload_id)
    # The link itself is the credential: whatever else the request carries, it reads this one
    # upload and nothing more.
    g.principal = Principal(
        name=None,
        role="anonymous",
        via="link",
        link_upload=upload_id,
        scopes=FIXED_SCOPES["link"],
    )
    download = service().download(upload_id, g.principal)
    response = send_download(download, send_body=request.method == "GET")
    # Keep the URL out of Referer headers. Caching stays `private, no-cache` (as on /files/): a
    # browser must come back to revalidate, so a revoked or expired link stops working even for
    # a copy it already holds.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _verified_link(upload_id: str) -> None:
    """InvalidLink unless the link verifies (one answer for every failure)."""
    raw_expires = request.args.get("expires", "")
    signature = request.args.get("signature", "")
    if not (is_upload_id(upload_id) and raw_expires.isascii() and raw_expires.isdigit()):
        raise InvalidLink()
    if len(raw_expires) > 12 or not signature.isascii() or len(signature) > 128:
        raise InvalidLink()
    expires = int(raw_expires)
    components = current_app.extensions["tusserver"]
    link_secret = components.links.link_secret(upload_id)
    if not verify_link(components.secret_key, upload_id, expires, link_secret, signature):
        raise InvalidLink()


def _link_url(upload_id: str, expires: int, signature: str) -> str:
    query = urlencode({"expires": expires, "signature": signature})
    origin = service().settings.download_origin
    if origin:
        return f"{origin}{url_for('links.link_download', upload_id=upload_id)}?{query}"
    return f"{url_for('links.link_download', upload_id=upload_id, _external=True)}?{query}"


def _owned_upload(upload_id: str) -> UploadInfo:
    """The upload if the caller may manage it; for anyone else exactly the 404 of a missing one.

    Links are shared by owners and admins only: a grant holder or a link holder may read or
    write an upload but never hand it on.
    """
    caller = principal()
    if caller.is_anonymous or caller.grant is not None or caller.link_upload is not None:
        raise UploadNotFound()
    info = service().info(upload_id, caller, "write")
    require_scope(caller, "share")  # after ownership: a stranger's upload stays a 404
    return info


# -- grants ----------------------------------------------------------------------------------
@bp.post("/api/grants")
def create_grant() -> Response:
    """A signed token that lets someone without an account make a few bounded uploads."""
    caller = principal()
    if caller.name is None or caller.grant is not None or caller.link_upload is not None:
        raise Forbidden("only a signed-in user can issue upload grants")
    require_scope(caller, "grant")
    settings = service().settings
    body = _json_body('{"max_size": 1048576, "expires_in": 3600, "uploads": 1}')
    size_limit = settings.max_size or _MAX_JSON_INT
    max_size = _int_field(body, "max_size", 1, size_limit)
    expires_in = _int_field(body, "expires_in", 1, settings.grant_max_lifetime)
    uploads = _int_field(body, "uploads", 1, MAX_GRANT_UPLOADS)
    metadata = _metadata_field(body.get("metadata"), settings.max_metadata_size)
    grant = Grant(
        id=new_grant_id(),
        owner=caller.name,
        max_size=max_size,
        uploads=uploads,
        expires=float(int(time.time()) + expires_in),
        metadata=metadata,
    )
    token = issue_grant(current_app.extensions["tusserver"].secret_key, grant)
    log_security_event(
        "grant-created", grant_id=grant.id, owner=grant.owner, uploads=uploads, max_size=max_size
    )
    response = jsonify(grant=token, expires=_iso(grant.expires), uploads=uploads, max_size=max_size)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def _metadata_field(value: Any, max_bytes: int) -> dict[str, str]:
    """Fixed upload metadata: a small object of tus-compatible keys and text values."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_GRANT_METADATA_PAIRS:
        raise BadRequest(f"metadata must be an object of at most {MAX_GRANT_METADATA_PAIRS} keys")
    size = 0
    for key, item in value.items():
        if not (
            isinstance(key, str)
            and key
            and key.isascii()
            and key.isprintable()
            and " " not in key
            and "," not in key
        ):
            raise BadRequest("metadata keys must be printable ASCII without spaces or commas")
        if not isinstance(item, str):
            raise BadRequest("metadata values must be strings")
        try:
            encoded = item.encode("utf-8")  # a lone surrogate (JSON allows "\ud800") cannot be
        except UnicodeEncodeError:
            raise BadRequest("metadata values must be valid Unicode text") from None
        size += len(key) + len(encoded) * 4 // 3 + 4
    if size > max_bytes:
        raise BadRequest(f"metadata is larger than {max_bytes} bytes")
    return dict(value)


# -- helpers ---------------------------------------------------------------------------------
def _json_body(example: str) -> dict[str, Any]:
    """The body through the API's one JSON reader (bounded depth, no lone surrogates)."""
    return read_json_object(example)


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    """A whole number in range; `60.0` counts (JSON, and JSON Schema, do not tell them apart)."""
    value = body.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return value


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
