"""The one catalogue of errors a client can see.

Every failure that reaches a client is a `TusError` subclass carrying its HTTP status, a stable
machine-readable code and a human message. Views render them (plain text on the tus endpoints, JSON
under `/api/`, no body for HEAD); the service and the adapters raise them. Backend exceptions
(Redis, S3, OS errors) are translated into `BackendUnavailable` at the adapter boundary, so nothing
above the adapters ever sees a library's exception type.
"""

from __future__ import annotations

from collections.abc import Mapping


class TusError(Exception):
    """An error with a status, a code and a message that is safe to show to the client."""

    status: int = 500
    code: str = "internal-error"
    default_message: str = "Internal server error"

    def __init__(self, message: str | None = None, headers: Mapping[str, str] | None = None):
        self.message = message or self.default_message
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class BadRequest(TusError):
    status, code, default_message = 400, "bad-request", "Bad request"


class InvalidHeader(BadRequest):
    code = "invalid-header"


class InvalidMetadata(BadRequest):
    code = "invalid-metadata"


class InvalidConcat(BadRequest):
    code = "invalid-concat"


class UnsupportedChecksumAlgorithm(BadRequest):
    code, default_message = "unsupported-checksum-algorithm", "Unsupported checksum algorithm"


class InconsistentLength(InvalidHeader):
    """Two indications of an upload's length disagree (a header, a body, the recorded length)."""

    code, default_message = "inconsistent-upload-length", "Inconsistent upload length values"


class UploadCompleted(BadRequest):
    """The IETF draft forbids appending to an upload once it is complete."""

    code, default_message = "completed-upload", "The upload is already complete"


class UnsupportedInteropVersion(BadRequest):
    code = "unsupported-interop-version"
    default_message = "Unsupported Upload-Draft-Interop-Version"


class LengthRequired(BadRequest):
    code = "length-required"
    default_message = "Upload-Length or Upload-Defer-Length: 1 is required"


class Unauthorized(TusError):
    """No valid credential: RFC 6750 asks for a `WWW-Authenticate` challenge with the 401."""

    status, code, default_message = 401, "unauthorized", "Authentication required"

    def __init__(self, message: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(
            message, {"WWW-Authenticate": 'Bearer realm="tusserver"', **(headers or {})}
        )


class Forbidden(TusError):
    status, code, default_message = 403, "forbidden", "Forbidden"


class UploadNotFound(TusError):
    status, code, default_message = 404, "not-found", "Upload not found"


class Conflict(TusError):
    status, code, default_message = 409, "conflict", "Conflict"


class OffsetMismatch(Conflict):
    code = "offset-mismatch"


class UploadIncomplete(Conflict):
    code = "upload-incomplete"


class UploadGone(TusError):
    status, code, default_message = 410, "gone", "Upload expired or terminated"


class PreconditionFailed(TusError):
    status, code = 412, "unsupported-version"
    default_message = "Unsupported Tus-Resumable version"


class TooLarge(TusError):
    status, code, default_message = 413, "too-large", "Upload too large"


class UnsupportedMediaType(TusError):
    status, code = 415, "unsupported-media-type"
    default_message = "Content-Type must be application/offset+octet-stream"


class RangeNotSatisfiable(TusError):
    status, code, default_message = 416, "range-not-satisfiable", "Range not satisfiable"


class UploadLocked(TusError):
    status, code = 423, "locked"
    default_message = "Upload is locked by another request; retry shortly"


class LockLost(UploadLocked):
    """The writer lost the upload's lock before it could commit: its bytes never count."""

    code = "lock-lost"
    default_message = "Another request took over the upload; check its offset and resume"


class TooManyRequests(TusError):
    status, code, default_message = 429, "too-many-requests", "Too many requests; retry later"


class HeaderTooLarge(TusError):
    status, code, default_message = 431, "header-too-large", "Request header too large"


class ChecksumMismatch(TusError):
    status, code = 460, "checksum-mismatch"
    default_message = "Upload-Checksum does not match the received data"


class ReprDigestMismatch(ChecksumMismatch):
    """The whole upload does not match the Repr-Digest announced at creation (RFC 9530)."""

    code = "repr-digest-mismatch"
    default_message = (
        "the uploaded bytes do not match the Repr-Digest announced at creation; "
        "the upload stays incomplete"
    )


class HookRejected(TusError):
    """A blocking hook refused the operation; its status and message are passed through."""

    code, default_message = "rejected-by-hook", "Rejected by hook"

    def __init__(self, message: str | None = None, status: int = 400):
        super().__init__(message)
        self.status = status


class HookFailed(TusError):
    status, code = 502, "hook-failed"
    default_message = "A required hook did not answer; try again later"


class BackendUnavailable(TusError):
    """A backend (Redis, S3, the disk) failed; the client should retry after `Retry-After`."""

    status, code = 503, "backend-unavailable"
    default_message = "Storage backend unavailable; try again later"

    RETRY_AFTER = "2"
    """Seconds a client is asked to wait (`Retry-After`) before trying again: long enough for a
    supervised embedded Redis to be back (it restarts within a second)."""

    def __init__(self, message: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message, {"Retry-After": self.RETRY_AFTER, **(headers or {})})
