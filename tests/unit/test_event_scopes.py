"""Who follows which event stream: the scope rules of `GET /api/events`, principal by principal
(every kind of credential reaches the view as a `Principal`)."""

from __future__ import annotations

import pytest

from tusserver.auth.principal import Principal
from tusserver.errors import Forbidden
from tusserver.state.keys import Keys
from tusserver.views.events import _stream_of


@pytest.mark.parametrize(
    ("scopes", "stream_key"),
    [
        (None, "{all}:events"),
        (frozenset({"read", "admin"}), "{all}:events"),
        (frozenset({"read"}), "owner:{o:root}:events"),  # an admin's read-only token: own files
        (frozenset({"upload"}), None),
        (frozenset({"manage"}), None),
    ],
)
def test_which_stream_a_token_follows_depends_on_its_scopes(
    scopes: frozenset[str] | None, stream_key: str | None
) -> None:
    admin = Principal("root", "admin", "token", token_id="t", scopes=scopes)
    if stream_key is None:
        with pytest.raises(Forbidden):
            _stream_of(admin, Keys("p:"))
    else:
        assert _stream_of(admin, Keys("p:"))[1] == "p:" + stream_key
