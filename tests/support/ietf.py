"""Helpers for IETF resumable-upload draft requests through Flask's test client."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.support.tus import path_of

PARTIAL = "application/partial-upload"


def interop(version: int) -> dict[str, str]:
    return {"Upload-Draft-Interop-Version": str(version)}


def sf_bool(value: bool) -> str:
    return "?1" if value else "?0"


def digest_field(data: bytes, algorithm: str = "sha-256") -> str:
    """A Content-Digest / Repr-Digest value for `data` (RFC 9530)."""
    raw = hashlib.new(algorithm.replace("-", ""), data).digest()
    return f"{algorithm}=:{base64.b64encode(raw).decode()}:"


def draft_create(
    client: Any,
    version: int,
    data: bytes = b"",
    complete: bool = False,
    **headers: str,
) -> Any:
    sent = {**interop(version), "Upload-Complete": sf_bool(complete)}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.post("/files/", data=data, headers=sent)


def draft_upload(client: Any, version: int, **headers: str) -> str:
    """Create an empty incomplete upload; its path."""
    response = draft_create(client, version, **headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return path_of(response.headers["Location"])


def draft_append(
    client: Any,
    version: int,
    path: str,
    offset: int,
    data: bytes,
    complete: bool,
    **headers: str,
) -> Any:
    sent = {
        **interop(version),
        "Content-Type": PARTIAL,
        "Upload-Offset": str(offset),
        "Upload-Complete": sf_bool(complete),
    }
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.patch(path, data=data, headers=sent)


def draft_head(client: Any, version: int, path: str, **headers: str) -> Any:
    return client.head(path, headers={**interop(version), **headers})
