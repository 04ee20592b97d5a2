"""Reading a Server-Sent Events stream in tests, from any iterator of byte chunks: an `httpx`
streaming response against a live server, or the Flask test client's body iterator.

The reader is synchronous: it pulls chunks until a whole event is there. The server sends a
heartbeat comment every `TUSSERVER_EVENTS_HEARTBEAT` seconds, so with a short heartbeat a read
never blocks for long, and a wait for an event that never comes ends at its deadline with the
events seen so far in the message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    """One SSE event: `id` (None when the server sent none), `event` name, decoded JSON data."""

    id: str | None
    event: str
    data: dict[str, Any]


class SseReader:
    """Events from a stream of chunks, in order."""

    def __init__(self, chunks: Iterator[bytes] | Any):
        self._chunks = iter(chunks)
        self._buffer = b""
        self.seen: list[Event] = []
        self.comments: list[str] = []

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None if none came within `timeout` seconds (or the stream ended)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._pop_frame()
            if frame is not None:
                event = self._parse(frame)
                if event is not None:
                    self.seen.append(event)
                    return event
                continue
            if time.monotonic() > deadline:
                return None
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                return None

    def until(self, predicate: Callable[[Event], bool], timeout: float = 15) -> list[Event]:
        """Events up to and including the first that matches; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        got: list[Event] = []
        while True:
            event = self.next_event(max(0.0, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(f"no matching event within {timeout} s; got {got}")
            got.append(event)
            if predicate(event):
                return got

    def wait_open(self, timeout: float = 15) -> None:
        """Until the server's opening comment arrived (the stream is registered)."""
        deadline = time.monotonic() + timeout
        while "stream open" not in self.comments:
            frame = self._pop_frame()
            if frame is not None:
                event = self._parse(frame)
                if event is not None:
                    self.seen.append(event)
                continue
            if time.monotonic() > deadline:
                raise AssertionError("the event stream did not open")
            self._buffer += next(self._chunks)

    def _pop_frame(self) -> bytes | None:
        self._buffer = self._buffer.replace(b"\r\n", b"\n")
        head, separator, rest = self._buffer.partition(b"\n\n")
        if not separator:
            return None
        self._buffer = rest
        return head

    def _parse(self, frame: bytes) -> Event | None:
        fields: dict[str, str] = {}
        for line in frame.decode().split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "data" not in fields:
            return None
        return Event(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))


def of_upload(upload_id: str, kind: str | None = None) -> Callable[[Event], bool]:
    """A predicate: an event about `upload_id` (of type `kind`, if given)."""
    return lambda e: e.data.get("id") == upload_id and (kind is None or e.event == kind)
