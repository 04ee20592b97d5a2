"""Issue 10's defects, each shown through the service or the HTTP API on real Redis and stores.

Every test here failed on the code before the fenced write path (see the commit that added it).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.support.tus import OCTET, TUS, create, head, patch, send_raw, upload_id
from tusserver.auth.principal import OPEN_ADMIN
from tusserver.errors import UploadGone, UploadNotFound
from tusserver.maintenance import rebuild_index


def components(app: Flask) -> Any:
    return app.extensions["tusserver"]


def offset_of(client: Any, path: str) -> int:
    response = head(client, path)
    assert response.status_code == 200
    return int(response.headers["Upload-Offset"])


class LosesItsLock(io.RawIOBase):
    """A body that, after its first chunk, lets the upload's lock pass to another request.

    It then keeps trickling until the lock keeper interrupts it for the lost lock.
    """

    def __init__(self, take_over: Callable[[], None]):
        self.take_over: Callable[[], None] | None = take_over
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent and self.take_over is not None:
            self.take_over()
            self.take_over = None
        if self.sent >= 40:
            time.sleep(0.05)  # a slow client: the keeper notices the loss meanwhile
        if self.sent >= 4000:
            return b""
        self.sent += 10
        return b"x" * 10


def test_a_writer_that_lost_its_lock_commits_nothing(make_app: Callable[..., Flask]) -> None:
    """Defect 1: after the keeper interrupts for lock loss, the service must not commit."""
    app = make_app()
    client = app.test_client()
    path = create(client, 10_000)
    state = components(app).state
    uid = upload_id(path)

    def take_over() -> None:  # the lock expired and a newcomer took it
        state.client.set(state.keys.lock(uid), "elsewhere/1|1|1|newcomer")

    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    response = send_raw(client, "PATCH", path, LosesItsLock(take_over), headers, 4000)

    assert response.status_code == 423
    assert offset_of(client, path) == 0, "a writer without the lock committed"
    state.client.delete(state.keys.lock(uid))
    assert patch(client, path, 0, b"y" * 100).status_code == 204
    assert client.get(path, headers={"Range": "bytes=0-99"}).status_code in (206, 409)


class SlowBody(io.RawIOBase):
    """`data` in 10 KB reads; `on_first` runs after the first read; later reads trickle."""

    def __init__(self, data: bytes, on_first: Callable[[], None]):
        self.data, self.position = data, 0
        self.on_first: Callable[[], None] | None = on_first

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.position and self.on_first is not None:
            self.on_first()
            self.on_first = None
        elif self.position:
            time.sleep(0.02)
        chunk = self.data[self.position : self.position + 10_000]
        self.position += len(chunk)
        return chunk


def test_two_writers_with_a_forced_lock_loss(make_app: Callable[..., Flask]) -> None:
    """Defect 1: the stale writer can neither commit nor destroy what the new one committed."""
    app = make_app()
    client = app.test_client()
    data = os.urandom(300_000)
    path = create(client, len(data))
    state = components(app).state
    uid = upload_id(path)
    second: dict[str, Any] = {}

    def lock_expires_and_a_second_writer_commits() -> None:
        state.client.delete(state.keys.lock(uid))

        def write() -> None:
            second["response"] = patch(app.test_client(), path, 0, data)

        thread = threading.Thread(target=write)
        thread.start()
        thread.join()

    headers = {**TUS, **OCTET, "Upload-Offset": "0"}
    body = SlowBody(data, lock_expires_and_a_second_writer_commits)
    first = send_raw(client, "PATCH", path, body, headers, len(data))

    assert second["response"].status_code == 204
    assert first.status_code in (409, 423)
    assert offset_of(client, path) == len(data)
    assert hashlib.sha256(client.get(path).data).digest() == hashlib.sha256(data).digest()


def test_rename_to_a_lone_surrogate_is_refused_and_the_upload_stays_healthy(
    client: Any,
) -> None:
    """Fuzzing found this: the name was accepted, and every HEAD of the upload answered 500."""
    path = create(client, 5, filename="a.txt")
    response = client.patch(
        f"/api/uploads/{upload_id(path)}",
        data=b'{"filename": "bad\\ud800name"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert head(client, path).status_code == 200
    assert client.get(f"/api/uploads/{upload_id(path)}").json["filename"] == "a.txt"


@pytest.mark.parametrize("depth", [100, 30_000])
def test_deeply_nested_json_is_a_400(client: Any, depth: int) -> None:
    path = create(client, 5, filename="a.txt")
    body = b"[" * depth + b"]" * depth
    response = client.patch(
        f"/api/uploads/{upload_id(path)}", data=body, content_type="application/json"
    )
    assert response.status_code in (400, 413)
    assert client.get(f"/api/uploads/{upload_id(path)}").json["filename"] == "a.txt"


def test_a_download_racing_a_termination_is_404_or_410(app: Flask) -> None:
    """Defect 5: the download was opened after the termination removed the bytes (500)."""
    client = app.test_client()
    path = create(client, 5)
    assert patch(client, path, 0, b"hello").status_code == 204
    service = components(app).service
    download = service.download(upload_id(path), OPEN_ADMIN)

    service.terminate(upload_id(path), OPEN_ADMIN)

    with pytest.raises((UploadGone, UploadNotFound)):
        if download.path is not None:
            download.open_file().close()
        else:
            b"".join(download.read(0, 5))


def test_rename_waits_for_the_lock(make_app: Callable[..., Flask]) -> None:
    """Defect 6: rename rewrote info.json without the lock, racing a length declaration."""
    app = make_app(lock_wait=0.2)
    client = app.test_client()
    path = create(client, 5, filename="a.txt")
    lock = components(app).locks.acquire(upload_id(path))
    try:
        response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "b.txt"})
        assert response.status_code == 423
    finally:
        lock.release()
    response = client.patch(f"/api/uploads/{upload_id(path)}", json={"filename": "b.txt"})
    assert response.status_code == 200


def test_unused_partials_expire_zero_length_ones_too(make_app: Callable[..., Flask]) -> None:
    """Defect 4: zero-length and complete partials that no final uses never expired."""
    now = [1_800_000_000.0]
    app = make_app(clock=lambda: now[0], expire_after=60)
    client = app.test_client()
    empty = create(client, 0, headers={"Upload-Concat": "partial"})
    full = create(client, 3, headers={"Upload-Concat": "partial"})
    assert patch(client, full, 0, b"abc").status_code == 204
    used = create(client, 3, headers={"Upload-Concat": "partial"})
    assert patch(client, used, 0, b"def").status_code == 204
    final = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{used}"})
    assert final.status_code == 201

    now[0] += 61
    removed = components(app).service.cleanup()

    assert sorted(removed) == sorted([upload_id(empty), upload_id(full)])
    assert client.get(final.headers["Location"]).data == b"def"


def test_a_partial_in_use_cannot_be_removed(client: Any) -> None:
    """Defect 2: a final must never reference a deleted partial."""
    part = create(client, 3, headers={"Upload-Concat": "partial"})
    assert patch(client, part, 0, b"abc").status_code == 204
    final = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{part}"})
    assert final.status_code == 201
    assert client.delete(part, headers=TUS).status_code == 403
    assert client.get(final.headers["Location"]).data == b"abc"


def test_bytes_without_state_are_swept_after_a_grace_period(app: Flask) -> None:
    """Defect 3: a termination whose byte removal failed orphaned the bytes for good."""
    client = app.test_client()
    kept, lost = create(client, 5), create(client, 5)
    for path in (kept, lost):
        assert patch(client, path, 0, b"hello").status_code == 204
    state = components(app).state
    state.client.delete(state.keys.upload(upload_id(lost)))  # state gone, bytes still there
    service = components(app).service

    assert service.sweep_orphans(grace=3600) == []  # too young to judge
    assert service.sweep_orphans(grace=-1) == [upload_id(lost)]

    stored = {uid for uid, _ in components(app).store.stored_uploads()}
    assert upload_id(lost) not in stored and upload_id(kept) in stored
    assert client.get(kept).data == b"hello"


@pytest.mark.parametrize("store_kind", ["s3"], indirect=True)
def test_rebuild_index_never_resurrects_a_terminated_upload(app: Flask) -> None:
    """Defect 3: an info.json that survived a termination brought the upload back."""
    client = app.test_client()
    path = create(client, 5)
    assert patch(client, path, 0, b"hello").status_code == 204
    parts = components(app)
    info = parts.state.get(upload_id(path))
    assert client.delete(path, headers=TUS).status_code == 204
    parts.store.save_info(info)  # the byte removal failed half-way: info.json survived

    from tusserver.storage.s3 import contiguous_parts

    results = list(
        rebuild_index(parts.settings, parts.state, parts.store, contiguous_parts, time.time)
    )

    assert [r.action for r in results if r.info.id == info.id] == ["gone"]
    assert head(client, path).status_code == 410


def test_a_final_and_a_termination_racing_never_lose_a_member(app: Flask) -> None:
    """Defect 2, raced: whichever wins, no final ever points at a removed partial."""
    client = app.test_client()
    for _ in range(10):
        part = create(client, 3, headers={"Upload-Concat": "partial"})
        assert patch(client, part, 0, b"abc").status_code == 204
        outcome: dict[str, int] = {}

        def make_final(part: str = part, outcome: dict[str, int] = outcome) -> None:
            with app.test_client() as other:
                response = other.post("/files/", headers={**TUS, "Upload-Concat": f"final;{part}"})
                outcome["final"] = response.status_code
                outcome["location"] = response.headers.get("Location")  # type: ignore[assignment]

        thread = threading.Thread(target=make_final)
        thread.start()
        deleted = client.delete(part, headers=TUS).status_code
        thread.join()
        if outcome["final"] == 201:
            assert client.get(outcome["location"]).data == b"abc"  # type: ignore[arg-type]
        else:
            assert deleted == 204
