"""Expiration: Upload-Expires, 410 once past it, sliding expiry, and the cleanup of the dead."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from tests.support.tus import TUS, create, head, patch, stored_objects, upload_id

T0 = 1_750_000_000.0
EXPIRE = 3600
IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(make_app: Any, clock: FakeClock) -> Any:
    return make_app(clock=clock, expire_after=EXPIRE)


def expires_at(response: Any) -> float:
    value = response.headers["Upload-Expires"]
    assert IMF_FIXDATE.fullmatch(value), value
    return parsedate_to_datetime(value).timestamp()


def service(app: Any) -> Any:
    return app.extensions["tusserver"].service


def test_post_announces_upload_expires(client: Any) -> None:
    response = client.post("/files/", headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 201
    assert expires_at(response) == T0 + EXPIRE


def test_head_and_patch_announce_upload_expires(client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    assert expires_at(head(client, path)) == T0 + EXPIRE
    clock.advance(600)
    response = patch(client, path, 0, b"abc")
    assert response.status_code == 204
    assert expires_at(response) == T0 + 600 + EXPIRE
    assert expires_at(head(client, path)) == T0 + 600 + EXPIRE


def test_expired_upload_answers_410(client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    patch(client, path, 0, b"abc")
    clock.advance(EXPIRE - 1)
    assert head(client, path).status_code == 200
    clock.advance(1)
    assert head(client, path).status_code == 410
    assert patch(client, path, 3, b"def").status_code == 410
    assert client.get(path).status_code == 410
    assert client.head(path).status_code == 410
    assert client.delete(path, headers=TUS).status_code == 410


def test_expired_deferred_upload_answers_410(client: Any, clock: FakeClock) -> None:
    path = create(client, None)
    clock.advance(EXPIRE + 1)
    assert head(client, path).status_code == 410


def test_expiry_slides_with_every_patch(client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    for offset in range(5):
        clock.advance(EXPIRE - 10)  # almost expired every time, kept alive by the PATCH
        response = patch(client, path, offset, b"x")
        assert response.status_code == 204
    clock.advance(EXPIRE - 10)
    assert head(client, path).headers["Upload-Offset"] == "5"


def test_a_rejected_patch_does_not_extend_the_expiry(client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    clock.advance(100)
    assert patch(client, path, 5, b"x").status_code == 409
    assert expires_at(head(client, path)) == T0 + EXPIRE


def test_complete_uploads_never_expire(app: Any, client: Any, clock: FakeClock) -> None:
    path = create(client, 3)
    response = patch(client, path, 0, b"abc")
    assert "Upload-Expires" not in response.headers
    empty = create(client, 0)
    clock.advance(EXPIRE * 100)
    assert service(app).cleanup() == []
    state = head(client, path)
    assert state.status_code == 200
    assert "Upload-Expires" not in state.headers
    assert client.get(path).data == b"abc"
    assert client.get(empty).status_code == 200


def test_cleanup_removes_expired_state_and_data(app: Any, client: Any, clock: FakeClock) -> None:
    dead = create(client, 100_000)
    patch(client, dead, 0, b"d" * 70_000)  # more than one S3 part
    clock.advance(EXPIRE / 2)
    alive = create(client, 10)
    patch(client, alive, 0, b"abc")
    assert stored_objects(app, upload_id(dead))
    clock.advance(EXPIRE / 2 + 1)

    assert service(app).cleanup() == [upload_id(dead)]

    assert stored_objects(app, upload_id(dead)) == {}
    assert head(client, dead).status_code == 410
    listing = client.get("/api/uploads").get_json()
    assert [u["id"] for u in listing["uploads"]] == [upload_id(alive)]
    assert listing["total"] == 1
    assert head(client, alive).headers["Upload-Offset"] == "3"
    assert stored_objects(app, upload_id(alive))
    assert service(app).cleanup() == []


def test_cleanup_before_expiry_removes_nothing(app: Any, client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    clock.advance(EXPIRE - 1)
    assert service(app).cleanup() == []
    assert head(client, path).status_code == 200


def test_cleanup_skips_an_upload_being_written(app: Any, client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    clock.advance(EXPIRE + 1)
    lock = app.extensions["tusserver"].locks.acquire(upload_id(path), wait=0)
    try:
        assert service(app).cleanup() == []
    finally:
        lock.release()
    assert app.extensions["tusserver"].state.get(upload_id(path)) is not None
    assert service(app).cleanup() == [upload_id(path)]
    assert app.extensions["tusserver"].state.get(upload_id(path)) is None


def test_expired_upload_in_the_api(app: Any, client: Any, clock: FakeClock) -> None:
    path = create(client, 10)
    clock.advance(EXPIRE + 1)
    response = client.get(f"/api/uploads/{upload_id(path)}")
    assert response.status_code == 410
    assert response.get_json()["error"]["code"] == "gone"


def test_expired_uploads_leave_the_listing_before_the_reaper_runs(
    client: Any, clock: FakeClock
) -> None:
    stale = create(client, 10, filename="stale.bin")
    clock.advance(EXPIRE - 5)
    fresh = create(client, 10, filename="fresh.bin")
    clock.advance(10)
    listed = [u["id"] for u in client.get("/api/uploads").json["uploads"]]
    assert listed == [upload_id(fresh)]
    assert head(client, stale).status_code == 410


def test_an_expired_partial_takes_its_unfinished_final_upload_with_it(
    client: Any, app: Any, clock: FakeClock
) -> None:
    """concatenation-unfinished: a final upload whose partial expired can never complete."""
    done = create(client, 3, headers={"Upload-Concat": "partial"})
    assert patch(client, done, 0, b"abc").status_code == 204
    abandoned = create(client, 10, headers={"Upload-Concat": "partial"})
    patch(client, abandoned, 0, b"12345")
    final = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{done} {abandoned}"})
    assert final.status_code == 201
    final_path = "/files/" + upload_id(final.headers["Location"])
    clock.advance(EXPIRE + 1)
    service(app).cleanup()
    assert head(client, final_path).status_code in (404, 410)
    assert head(client, done).status_code in (404, 410)
    assert head(client, abandoned).status_code in (404, 410)
    assert stored_objects(app, upload_id(abandoned)) == {}
