"""Reading the bounded event streams back: resuming after a `Last-Event-ID`.

Each event is an entry of a Redis stream (`XADD ... MAXLEN ~ N`): the owner's stream and the
fleet-wide one (keys in `state/keys.py`). The entry id (`<ms>-<seq>`) is the SSE `id:`, so a
client that reconnects with `Last-Event-ID` gets exactly the entries after it (`XRANGE` with an
exclusive start). An id the stream cannot vouch for -- malformed, older than the oldest entry
still retained (events in between were trimmed), or newer than the newest (the stream was lost)
-- restarts the client from the oldest retained entry, and the stream says so with a `reset`
event, so the page reloads its list instead of trusting a gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..state.connect import Client

StreamId = tuple[int, int]
_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
PAGE = 500
"""Entries read per `XRANGE` while catching up (a long backlog is read in pages)."""


def parse_id(text: str | None) -> StreamId | None:
    """`"1712345678901-3"` -> (1712345678901, 3); None for anything else."""
    if not text:
        return None
    match = _ID.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


BEGINNING: StreamId = (0, 0)
"""Before every entry: resuming after it replays all that is retained."""


@dataclass(frozen=True)
class Resume:
    """Where a stream starts: after entry `after`; `replay` says whether the retained entries
    after it are sent first (the client gave an id), `reset` whether its id was not honoured."""

    after: StreamId
    replay: bool
    reset: bool


def plan_resume(client: Client, key: str, last_event_id: str | None) -> Resume:
    """Where to start. Without an id: after the newest entry (live only), which is also where a
    stream that lost messages catches up from."""
    pipe = client.pipeline(transaction=False)
    pipe.xrange(key, count=1)
    pipe.xrevrange(key, count=1)
    first, last = pipe.execute()
    oldest = parse_id(first[0][0]) if first else None
    newest = parse_id(last[0][0]) if last else None
    if last_event_id is None:
        return Resume(newest or BEGINNING, replay=False, reset=False)
    wanted = parse_id(last_event_id)
    if wanted is None or oldest is None or newest is None or not oldest <= wanted <= newest:
        # Malformed, older than what is retained (a gap), newer than the newest (the stream
        # was lost), or nothing retained at all: we cannot vouch for what follows it.
        return Resume(BEGINNING, replay=True, reset=True)
    return Resume(wanted, replay=True, reset=False)


def read_after(client: Client, key: str, after: StreamId) -> Iterator[tuple[str, str]]:
    """(entry id, event JSON) of every retained entry after `after`, oldest first, read a page
    at a time."""
    start = "(" + format_id(after)
    while True:
        entries = client.xrange(key, min=start, max="+", count=PAGE)
        for entry_id, fields in entries:
            yield entry_id, fields.get("e", "{}")
        if len(entries) < PAGE:
            return
        start = "(" + entries[-1][0]
