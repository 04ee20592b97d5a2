"""Errors for IETF draft clients: RFC 9457 problem details instead of tus's plain text.

The service raises the same catalogue errors whichever protocol a request speaks; this module only
chooses how a draft client sees them: the draft's registered problem types where the version
defines them (`mismatching-upload-offset` with both offsets, `completed-upload`,
`inconsistent-upload-length`), `about:blank` with the message as `detail` otherwise. tus's
private 460 (checksum mismatch) means nothing to a draft client and becomes a 400.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Response, current_app, g, request

from ..errors import (
    ChecksumMismatch,
    InconsistentLength,
    OffsetMismatch,
    TooLarge,
    TusError,
    UploadCompleted,
)
from ..protocol_ietf import (
    INTEROP_HEADER,
    LATEST,
    PROBLEM_CONTENT_TYPE,
    Draft,
    Problem,
    completed_upload,
    format_limits,
    inconsistent_length,
    mismatching_offset,
)


def request_draft() -> Draft | None:
    """The draft the current request speaks, even when it was refused before its view ran.

    A request refused early (401 from authentication, 404 for an unknown route) never reached
    the draft dispatcher, yet its client still expects a problem document, not tus's text.
    """
    draft = g.get("draft")
    if draft is not None:
        return draft
    if INTEROP_HEADER in request.headers and request.path.startswith("/files"):
        return LATEST
    return None


def problem_for(error: TusError, draft: Draft) -> Problem:
    """The problem document a draft client gets for a catalogue error."""
    if isinstance(error, OffsetMismatch):
        expected = error.headers.get("Upload-Offset", "")
        provided = g.get("provided_offset")
        if expected.isdigit() and provided is not None:
            return mismatching_offset(int(expected), provided)
    if isinstance(error, UploadCompleted):
        return completed_upload(error.message)
    if isinstance(error, InconsistentLength):
        return inconsistent_length(draft, error.message)
    status = 400 if isinstance(error, ChecksumMismatch) else error.status
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return Problem(status, title, detail=error.message)


def render_problem(error: TusError, draft: Draft) -> Response:
    """Render `error` for a draft client (no body for HEAD), keeping the error's headers."""
    problem = problem_for(error, draft)
    if request.method == "HEAD":
        response = Response(status=problem.status)
        del response.headers["Content-Type"]
    else:
        response = Response(problem.to_json(), status=problem.status)
        response.headers["Content-Type"] = PROBLEM_CONTENT_TYPE
    for name, value in error.headers.items():
        if name != "Tus-Version":
            response.headers[name] = value
    if isinstance(error, TooLarge):
        # "A server responding with a 413 as a result of its upload limits MUST include the
        # Upload-Limit header" (the draft's Upload-Limit section).
        limits = format_limits(current_app.extensions["tusserver"].service.limits(), draft)
        if limits:
            response.headers["Upload-Limit"] = limits
    return response
