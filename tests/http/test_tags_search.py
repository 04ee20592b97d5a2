"""Tags and search through HTTP: tags at creation and by PATCH, the listing's filters and sort,
validation, ownership, and the indexes following renames, deletions and expiry."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support.accounts import add_token, add_user, bearer
from tests.support.tus import TUS, create, head, metadata_header, patch, upload_id
from tusserver.auth.principal import Principal
from tusserver.errors import Forbidden, UploadNotFound
from tusserver.state.catalog import CatalogQuery
from tusserver.tags import tags_of

T0 = 1_750_000_000.0
EXPIRE = 3600
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG tiny").decode()


class Clock:
    """A clock the test moves by hand; every reading is one second after the last."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture(params=["local", "cluster"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The catalog lives in Redis: a single server and a Cluster (the data store plays no part)."""
    return str(request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(make_app: Any, clock: Clock) -> Any:
    return make_app(clock=clock, expire_after=EXPIRE)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def listing(client: Any, query: str = "", **headers: str) -> dict[str, Any]:
    response = client.get(f"/api/uploads?{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def names(client: Any, query: str = "", **headers: str) -> list[str]:
    return [u["filename"] for u in listing(client, query, **headers)["uploads"]]


def retag(client: Any, path: str, tags: Any, **headers: str) -> Any:
    return client.patch(f"/api/uploads/{upload_id(path)}", json={"tags": tags}, headers=headers)


# --- tags -------------------------------------------------------------------------------------


def test_tags_given_at_creation_are_listed_and_filterable(client: Any) -> None:
    create(client, 5, filename="a.txt", tags="work, draft,work")
    create(client, 5, filename="b.txt", tags="work")
    create(client, 5, filename="c.txt")
    first = listing(client, "tag=draft")["uploads"]
    assert [(u["filename"], u["tags"]) for u in first] == [("a.txt", ["work", "draft"])]
    assert names(client, "tag=work&sort=name") == ["a.txt", "b.txt"]
    assert names(client, "tag=work&tag=draft") == ["a.txt"]
    assert names(client, "tag=nothing") == []


@pytest.mark.parametrize(
    "tags",
    ["Upper", "has space", "a/b", "x" * 33, ",".join(f"t{n}" for n in range(21)), "é"],
)
def test_bad_tags_at_creation_are_400_and_create_nothing(client: Any, tags: str) -> None:
    sent = {
        **TUS,
        "Upload-Length": "5",
        "Upload-Metadata": metadata_header(filename="f", tags=tags),
    }
    response = client.post("/files/", headers=sent)
    assert response.status_code == 400
    assert listing(client)["total"] == 0


def test_patch_replaces_tags_and_the_index_follows(client: Any) -> None:
    path = create(client, 5, filename="a.txt", tags="old,keep")
    response = retag(client, path, ["keep", "new"])
    assert response.status_code == 200
    assert response.get_json()["tags"] == ["keep", "new"]
    assert names(client, "tag=new") == ["a.txt"]
    assert names(client, "tag=old") == []
    assert names(client, "tag=keep") == ["a.txt"]
    assert head(client, path).headers["Upload-Metadata"].count("tags ") == 1
    assert retag(client, path, []).get_json()["tags"] == []
    assert names(client, "tag=keep") == []


@pytest.mark.parametrize("tags", [["Bad"], "notalist", [1], [f"t{n}" for n in range(21)]])
def test_bad_tags_in_patch_are_400_and_change_nothing(client: Any, tags: Any) -> None:
    path = create(client, 5, filename="a.txt", tags="keep")
    assert retag(client, path, tags).status_code == 400
    assert listing(client)["uploads"][0]["tags"] == ["keep"]


def test_rename_and_retag_together(client: Any) -> None:
    path = create(client, 5, filename="old.txt")
    body = {"filename": "New Name.txt", "tags": ["x"]}
    response = client.patch(f"/api/uploads/{upload_id(path)}", json=body)
    assert response.status_code == 200
    assert names(client, "tag=x&q=new name") == ["New Name.txt"]
    assert names(client, "q=old") == []


def test_a_bad_filename_keeps_the_tags_too(client: Any) -> None:
    path = create(client, 5, filename="a.txt", tags="keep")
    body = {"filename": "a/b", "tags": ["other"]}
    assert client.patch(f"/api/uploads/{upload_id(path)}", json=body).status_code == 400
    assert listing(client)["uploads"][0]["tags"] == ["keep"]


def test_another_users_upload_cannot_be_tagged_or_found(make_app: Any) -> None:
    app = make_app(auth="required")
    add_user(app, "alice")
    add_user(app, "bob")
    alice, bob = bearer(add_token(app, "alice")), bearer(add_token(app, "bob"))
    client = app.test_client()
    path = create(client, 5, headers=alice, filename="secret.txt", tags="mine")
    assert retag(client, path, ["stolen"], **bob).status_code == 404
    assert names(client, "tag=mine", **bob) == []
    assert names(client, "q=secret", **bob) == []
    assert names(client, "tag=mine", **alice) == ["secret.txt"]


# --- thumbnails -------------------------------------------------------------------------------


def test_a_thumbnail_is_kept_and_listed(client: Any) -> None:
    create(client, 5, filename="p.png", thumbnail=PIXEL)
    assert listing(client)["uploads"][0]["thumbnail"] == PIXEL


@pytest.mark.parametrize(
    "thumbnail",
    [
        "data:image/png;base64," + "A" * 2100,  # too large
        "data:text/html;base64,PGI+",  # not an image
        "https://example.com/x.png",  # not a data URL
    ],
)
def test_a_bad_thumbnail_is_400(client: Any, thumbnail: str) -> None:
    sent = {**TUS, "Upload-Length": "5"}
    sent["Upload-Metadata"] = metadata_header(filename="f", thumbnail=thumbnail)
    assert client.post("/files/", headers=sent).status_code == 400
    assert listing(client)["total"] == 0


# --- filters and sort -------------------------------------------------------------------------


@pytest.fixture
def files(client: Any) -> dict[str, str]:
    """Four uploads created one second apart: two complete images, a text, an unfinished one."""
    made = {
        "Beach.PNG": create(client, 300, filename="Beach.PNG", filetype="image/png"),
        "cat.jpg": create(client, 100, filename="cat.jpg", filetype="image/jpeg"),
        "notes.txt": create(client, 200, filename="notes.txt", filetype="text/plain"),
        "big.bin": create(client, 1000, filename="big.bin", filetype="application/octet-stream"),
    }
    for name in ("Beach.PNG", "cat.jpg", "notes.txt"):
        size = {"Beach.PNG": 300, "cat.jpg": 100, "notes.txt": 200}[name]
        assert patch(client, made[name], 0, b"x" * size).status_code == 204
    return made


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["big.bin", "notes.txt", "cat.jpg", "Beach.PNG"]),
        ("sort=created", ["Beach.PNG", "cat.jpg", "notes.txt", "big.bin"]),
        ("sort=name", ["beach.png", "big.bin", "cat.jpg", "notes.txt"]),
        ("sort=-name", ["notes.txt", "cat.jpg", "big.bin", "beach.png"]),
        ("sort=size", ["cat.jpg", "notes.txt", "Beach.PNG", "big.bin"]),
        ("sort=-size", ["big.bin", "Beach.PNG", "notes.txt", "cat.jpg"]),
        ("q=BEACH", ["Beach.PNG"]),
        ("q=.", ["big.bin", "notes.txt", "cat.jpg", "Beach.PNG"]),
        ("q=B&sort=name", ["beach.png", "big.bin"]),
        ("q=ca", ["cat.jpg"]),
        ("q=ca&complete=false", []),
        ("complete=true&min_size=150&sort=size", ["notes.txt", "Beach.PNG"]),
        ("complete=false&min_size=150", ["big.bin"]),
        ("complete=true&max_size=150", ["cat.jpg"]),
        ("type=image/", ["cat.jpg", "Beach.PNG"]),
        ("type=image", ["cat.jpg", "Beach.PNG"]),
        ("type=image/png", ["Beach.PNG"]),
        ("complete=false", ["big.bin"]),
        ("complete=true&type=image&sort=size", ["cat.jpg", "Beach.PNG"]),
        ("min_size=200&max_size=300", ["notes.txt", "Beach.PNG"]),
        (f"since={T0 + 2}&until={T0 + 4}", ["notes.txt", "cat.jpg"]),
    ],
)
def test_filters_and_sort(
    client: Any, files: dict[str, str], query: str, expected: list[str]
) -> None:
    found = names(client, query)
    if "name" in query:
        found = [name.lower() for name in found]
    assert found == expected
    assert listing(client, query)["total"] == len(expected)


def test_since_takes_iso_8601_like_unix_seconds(client: Any, files: dict[str, str]) -> None:
    created = {u["filename"]: u["created"] for u in listing(client)["uploads"]}
    iso = created["notes.txt"]
    assert names(client, f"since={iso}&sort=created") == ["notes.txt", "big.bin"]
    assert names(client, f"until={iso}&sort=created") == ["Beach.PNG", "cat.jpg"]


def test_next_page_keeps_the_filters(client: Any, files: dict[str, str]) -> None:
    page = listing(client, "type=image&sort=name&limit=1")
    assert [u["filename"] for u in page["uploads"]] == ["Beach.PNG"]
    assert "type=image" in page["next"] and "sort=name" in page["next"]
    following = client.get(page["next"]).get_json()
    assert [u["filename"] for u in following["uploads"]] == ["cat.jpg"]
    assert following["next"] is None


@pytest.mark.parametrize(
    "query",
    [
        "sort=colour",
        "sort=--name",
        "complete=yes",
        "min_size=-1",
        "max_size=1.5",
        "since=yesterday",
        "until=2026-13-01",
        "type=image//png",
        "type=/png",
        "tag=Not%20A%20Tag",
        "q=" + "x" * 201,
        "since=1e400",
    ],
)
def test_bad_filters_are_400(client: Any, query: str) -> None:
    response = client.get(f"/api/uploads?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"]


# --- the indexes follow every change ------------------------------------------------------------


def test_rename_moves_the_name_in_the_index(client: Any, files: dict[str, str]) -> None:
    uid = upload_id(files["cat.jpg"])
    assert client.patch(f"/api/uploads/{uid}", json={"filename": "Dog.jpg"}).status_code == 200
    assert names(client, "q=cat") == []
    assert names(client, "q=dog") == ["Dog.jpg"]
    assert names(client, "q=ca") == []
    assert names(client, "q=do") == ["Dog.jpg"]
    assert names(client, "q=t") == ["notes.txt"]  # "cat" was the only other one
    assert names(client, "sort=name")[:3] == ["Beach.PNG", "big.bin", "Dog.jpg"]


INDEX_QUERIES = [
    CatalogQuery(tags=("t",)),
    CatalogQuery(q="gone"),
    CatalogQuery(q="go"),
    CatalogQuery(q="g"),
    CatalogQuery(complete=False, min_size=0),
    CatalogQuery(complete=True, min_size=0),
    CatalogQuery(type="image"),
    CatalogQuery(complete=False),
    CatalogQuery(sort="name"),
    CatalogQuery(sort="size"),
    CatalogQuery(sort="updated"),
]


def assert_unindexed(app: Any) -> None:
    """No index knows the upload any more (asked of the catalog: a listing would also drop it
    lazily, which would hide a removal that never happened)."""
    catalog = app.extensions["tusserver"].service.state.catalog
    for query in INDEX_QUERIES:
        assert catalog.query(query, 10) == ([], 0), query
    state = app.extensions["tusserver"].service.state
    assert state.client.keys(f"{state.prefix}{{all}}:gram:*") == []


def test_delete_leaves_every_index(app: Any, client: Any) -> None:
    path = create(client, 5, filename="gone.png", filetype="image/png", tags="t")
    assert client.delete(f"/api/uploads/{upload_id(path)}").status_code == 204
    assert_unindexed(app)


def test_expiry_leaves_every_index(app: Any, client: Any, clock: Clock) -> None:
    path = create(client, 5, filename="gone.png", filetype="image/png", tags="t")
    clock.now += EXPIRE + 10
    assert app.extensions["tusserver"].service.cleanup() == [upload_id(path)]
    assert_unindexed(app)


def test_progress_moves_updated_and_completion(client: Any, clock: Clock) -> None:
    first = create(client, 4, filename="first")
    create(client, 4, filename="second")
    assert names(client, "sort=-updated") == ["second", "first"]
    assert patch(client, first, 0, b"abcd").status_code == 204
    assert names(client, "sort=-updated") == ["first", "second"]
    assert names(client, "complete=true") == ["first"]
    assert names(client, "complete=false") == ["second"]
    assert names(client, "complete=true&min_size=4") == ["first"]
    assert names(client, "complete=false&min_size=4") == ["second"]


def test_a_listing_drops_an_id_whose_state_is_gone(app: Any, client: Any) -> None:
    path = create(client, 5, filename="ghost", tags="t")
    state = app.extensions["tusserver"].service.state
    state.client.delete(state.keys.upload(upload_id(path)))  # a removal cut short
    page = listing(client, "tag=t")
    assert (page["uploads"], page["total"]) == ([], 0)
    assert state.catalog.query(CatalogQuery(tags=("t",)), 10) == ([], 0)  # and taken out


def test_reindex_restores_a_lost_index(app: Any, client: Any) -> None:
    path = create(client, 5, filename="kept", tags="t")
    state = app.extensions["tusserver"].service.state
    state.catalog.remove(upload_id(path))
    assert listing(client, "tag=t")["total"] == 0
    assert state.reindex(upload_id(path))
    assert names(client, "tag=t") == ["kept"]


def test_a_token_without_manage_may_not_tag_but_strangers_still_get_404(make_app: Any) -> None:
    app = make_app(auth="required")
    add_user(app, "alice")
    client = app.test_client()
    path = create(client, 5, headers=bearer(add_token(app, "alice")), filename="a", tags="x")
    service = app.extensions["tusserver"].service
    reader = Principal(name="alice", role="user", via="token", scopes=frozenset({"read"}))
    stranger = Principal(name="bob", role="user", via="token", scopes=frozenset({"read"}))
    with pytest.raises(Forbidden):
        service.set_tags(upload_id(path), reader, ["y"])
    with pytest.raises(UploadNotFound):
        service.set_tags(upload_id(path), stranger, ["y"])
    manager = Principal(name="alice", role="user", via="token", scopes=frozenset({"manage"}))
    assert tags_of(service.set_tags(upload_id(path), manager, ["y"]).metadata) == ("y",)
    assert service.state.get(upload_id(path)).metadata["tags"] == "y"


def test_dense_counts_follow_every_change(app: Any, client: Any, clock: Clock) -> None:
    """With every filter treated as large (as over 100,000 uploads), two filters are counted
    from their bitmaps: progress, rename, retag, delete and expiry must keep those right too."""
    catalog = app.extensions["tusserver"].service.state.catalog
    catalog.sparse, catalog.twin_min = 0, 1  # every set large, and with its bitmap twin
    a = create(client, 4, filename="apple.png", filetype="image/png", tags="t")
    b = create(client, 4, filename="banana.png", filetype="image/png", tags="t")
    create(client, 4, filename="cherry.txt", filetype="text/plain", tags="t")

    def totals() -> tuple[int, ...]:
        queries = ("complete=true&type=image", "q=an&complete=false", "tag=t&type=image")
        queries += ("type=image&complete=false",)
        return tuple(listing(client, query)["total"] for query in queries)

    assert totals() == (0, 1, 2, 2)
    assert patch(client, a, 0, b"abcd").status_code == 204  # completes "apple"
    assert totals() == (1, 1, 2, 1)
    rename = client.patch(f"/api/uploads/{upload_id(b)}", json={"filename": "plum.png"})
    assert rename.status_code == 200
    assert totals() == (1, 0, 2, 1)
    assert retag(client, a, []).status_code == 200
    assert totals() == (1, 0, 1, 1)
    assert client.delete(f"/api/uploads/{upload_id(a)}").status_code == 204
    assert totals() == (0, 0, 1, 1)
    create(client, 4, filename="banana.png", filetype="image/png", tags="t")  # reuses a slot
    assert totals() == (0, 1, 2, 2)
    clock.now += EXPIRE + 10
    app.extensions["tusserver"].service.cleanup()
    assert totals() == (0, 0, 0, 0)


def test_dense_size_ranges_follow_every_change(app: Any, client: Any) -> None:
    """A size range over large sets is counted from the size buckets' bitmaps (the buckets
    wholly inside it, plus the slices of the ones it cuts): a declared length, a delete, and
    a freed slot taken by an upload of another size must keep those right."""
    catalog = app.extensions["tusserver"].service.state.catalog
    catalog.sparse, catalog.twin_min = 0, 1  # every set large, and with its bitmap twin
    a = create(client, 4, filename="a.png", filetype="image/png", tags="t")
    create(client, 6, filename="b.png", filetype="image/png", tags="t")
    c = create(client, None, filename="c.png", filetype="image/png", tags="t")

    def totals() -> tuple[int, ...]:
        queries = ("type=image&min_size=4&max_size=7", "tag=t&min_size=5")
        queries += ("type=image&complete=false&min_size=8", "tag=t&max_size=4")
        return tuple(listing(client, query)["total"] for query in queries)

    assert totals() == (2, 1, 0, 1)
    assert patch(client, c, 0, b"", Upload_Length="9").status_code == 204  # length declared
    assert totals() == (2, 2, 1, 1)
    assert client.delete(f"/api/uploads/{upload_id(a)}").status_code == 204
    assert totals() == (1, 2, 1, 0)
    create(client, 20, filename="d.png", filetype="image/png", tags="t")  # reuses a's slot
    assert totals() == (1, 3, 2, 0)
