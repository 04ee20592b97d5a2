"""In-process hooks named by TUSSERVER_HOOKS_PYTHON."""

from __future__ import annotations

from typing import Any

from tests.support import python_hooks
from tests.support.tus import TUS, create, head, patch


def flush(app: Any) -> None:
    for receiver in app.extensions["tusserver"].service.hooks.hooks:
        if hasattr(receiver, "flush"):
            assert receiver.flush()


def test_python_hook_sees_events_changes_metadata_and_vetoes(make_app: Any) -> None:
    app = make_app(hooks_python="tests.support.python_hooks:record", hooks_receive_interval=0)
    client = app.test_client()
    python_hooks.EVENTS.clear()

    path = create(client, 4, filename="keep")
    upload_id = path.rsplit("/", 1)[-1]
    assert "seen MQ==" in head(client, path).headers["Upload-Metadata"]
    assert patch(client, path, 0, b"ab").status_code == 204
    assert patch(client, path, 2, b"cd").status_code == 204
    refused = client.delete(path, headers=TUS)
    assert refused.status_code == 403
    assert "this file is kept" in refused.get_data(as_text=True)
    assert head(client, path).status_code == 200

    flush(app)
    assert [event for event, uid in python_hooks.EVENTS if uid == upload_id] == [
        "pre-create",
        "post-create",
        "post-receive",
        "post-finish",
        "pre-terminate",
    ]


def test_unfinished_final_upload_fires_post_finish_once_when_its_last_part_completes(
    make_app: Any,
) -> None:
    app = make_app(hooks_python="tests.support.python_hooks:record")
    client = app.test_client()
    python_hooks.EVENTS.clear()
    a = create(client, 2, headers={"Upload-Concat": "partial"})
    b = create(client, 2, headers={"Upload-Concat": "partial"})
    final = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{a} {b}"})
    final_id = final.headers["Location"].rsplit("/", 1)[-1]
    assert patch(client, a, 0, b"ab").status_code == 204
    flush(app)
    assert ("post-finish", final_id) not in python_hooks.EVENTS
    assert patch(client, b, 0, b"cd").status_code == 204
    head(client, "/files/" + final_id)  # a read after completion must not fire it again
    flush(app)
    assert python_hooks.EVENTS.count(("post-finish", final_id)) == 1
    assert client.get("/files/" + final_id).data == b"abcd"
