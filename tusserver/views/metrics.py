"""GET /metrics: Prometheus exposition of every worker's counters."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import metrics
from ..errors import Forbidden, UploadNotFound
from .common import principal, service

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    if not service().settings.metrics_enabled:
        raise UploadNotFound("metrics are disabled")
    if not principal().is_admin:
        raise Forbidden("metrics are for admins")
    body, content_type = metrics.render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
