"""Small helpers for speaking tus through Flask's test client."""

from __future__ import annotations

import base64
from typing import Any

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def metadata_header(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(
    client: Any, length: int | None, headers: dict[str, str] | None = None, **meta: str
) -> str:
    """POST an upload; returns its path (e.g. /files/<id>)."""
    sent = dict(TUS)
    if length is None:
        sent["Upload-Defer-Length"] = "1"
    else:
        sent["Upload-Length"] = str(length)
    if meta:
        sent["Upload-Metadata"] = metadata_header(**meta)
    sent.update(headers or {})
    response = client.post("/files/", headers=sent)
    assert response.status_code == 201, response.get_data(as_text=True)
    return path_of(response.headers["Location"])


def path_of(location: str) -> str:
    return "/files/" + location.rstrip("/").rsplit("/", 1)[-1]


def patch(client: Any, path: str, offset: int, data: bytes, **headers: str) -> Any:
    sent = {**TUS, **OCTET, "Upload-Offset": str(offset)}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.patch(path, data=data, headers=sent)


def head(client: Any, path: str) -> Any:
    return client.head(path, headers=TUS)
