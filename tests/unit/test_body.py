"""`BodyReader`: bounded chunks, counting, limits, and a clean end when the client goes away."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest

from tusserver import body as body_module
from tusserver.body import BodyReader

DATA = bytes(range(256)) * 40  # 10,240 bytes


class Stream(io.RawIOBase):
    """A request body that records every read and can fail after some bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None, error: Exception | None = None):
        self.data = data
        self.pos = 0
        self.reads: list[int] = []
        self.fail_after = fail_after
        self.error = error or OSError("connection reset by peer")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise self.error
        end = len(self.data) if size < 0 else self.pos + size
        if self.fail_after is not None:
            end = min(end, self.fail_after)
        chunk = self.data[self.pos : end]
        self.pos += len(chunk)
        return chunk


class FakeSocket:
    def __init__(self, error: OSError | None = None):
        self.shutdowns: list[int] = []
        self.error = error

    def shutdown(self, how: int) -> None:
        self.shutdowns.append(how)
        if self.error:
            raise self.error


def test_chunks_are_bounded_and_counted() -> None:
    stream = Stream(DATA)
    reader = BodyReader(stream, len(DATA), chunk_size=1000)
    chunks = list(reader)
    assert b"".join(chunks) == DATA
    assert max(len(c) for c in chunks) <= 1000
    assert all(size <= 1000 for size in stream.reads)
    assert reader.received == len(DATA)
    assert reader.complete
    assert not reader.disconnected
    assert not reader.overflow


def test_never_reads_past_content_length() -> None:
    stream = Stream(DATA)
    reader = BodyReader(stream, 3000, chunk_size=1024)
    assert b"".join(reader) == DATA[:3000]
    assert stream.pos == 3000
    assert reader.received == 3000
    assert reader.complete


def test_empty_body_reads_nothing() -> None:
    stream = Stream(DATA)
    reader = BodyReader(stream, 0)
    assert list(reader) == []
    assert stream.reads == []
    assert reader.complete


def test_short_body_is_a_disconnect() -> None:
    reader = BodyReader(Stream(DATA[:4000]), len(DATA), chunk_size=1024)
    assert b"".join(reader) == DATA[:4000]
    assert reader.received == 4000
    assert reader.disconnected
    assert not reader.complete


def test_chunked_body_reads_to_the_end() -> None:
    reader = BodyReader(Stream(DATA), None, chunk_size=999)
    chunks = list(reader)
    assert b"".join(chunks) == DATA
    assert max(len(c) for c in chunks) <= 999
    assert reader.complete
    assert not reader.overflow


def test_chunked_body_past_its_limit_overflows_without_yielding_more() -> None:
    reader = BodyReader(Stream(DATA), None, chunk_size=1024)
    reader.limit = 5000
    assert b"".join(reader) == DATA[:5000]
    assert reader.received == 5000
    assert reader.overflow


def test_chunked_body_exactly_at_its_limit_is_fine() -> None:
    reader = BodyReader(Stream(DATA[:5000]), None, chunk_size=1024)
    reader.limit = 5000
    assert b"".join(reader) == DATA[:5000]
    assert not reader.overflow
    assert reader.complete


def test_chunked_body_with_no_room_at_all() -> None:
    reader = BodyReader(Stream(b"x"), None)
    reader.limit = 0
    assert list(reader) == []
    assert reader.overflow
    empty = BodyReader(Stream(b""), None)
    empty.limit = 0
    assert list(empty) == []
    assert not empty.overflow


def test_limit_also_bounds_a_content_length_body() -> None:
    stream = Stream(DATA)
    reader = BodyReader(stream, len(DATA), chunk_size=1024)
    reader.limit = 2000
    assert b"".join(reader) == DATA[:2000]
    assert stream.pos == 2000


def test_interrupt_ends_the_stream() -> None:
    reader = BodyReader(Stream(DATA), len(DATA), chunk_size=1000)
    received = []
    for chunk in reader:
        received.append(chunk)
        reader.interrupt("another request asked for the upload")
    assert received == [DATA[:1000]]
    assert reader.interrupted == "another request asked for the upload"
    assert not reader.complete
    assert not reader.disconnected


def test_interrupt_before_reading() -> None:
    stream = Stream(DATA)
    reader = BodyReader(stream, len(DATA))
    reader.interrupt("server shutting down")
    assert list(reader) == []
    assert stream.reads == []


def test_interrupt_shuts_down_the_socket_once() -> None:
    sock = FakeSocket()
    reader = BodyReader(Stream(DATA), len(DATA), sock=sock)  # type: ignore[arg-type]
    reader.interrupt("first")
    reader.interrupt("second")
    assert sock.shutdowns == [socket.SHUT_RD]
    assert reader.interrupted == "first"


def test_interrupt_survives_a_closed_socket() -> None:
    sock = FakeSocket(OSError("not connected"))
    reader = BodyReader(Stream(DATA), len(DATA), sock=sock)  # type: ignore[arg-type]
    reader.interrupt("gone")
    assert reader.interrupted == "gone"


@pytest.mark.parametrize(
    "error",
    [OSError("reset"), ConnectionResetError(), TimeoutError(), ValueError("bad chunk size")],
)
def test_a_failing_stream_is_a_disconnect(error: Exception) -> None:
    reader = BodyReader(Stream(DATA, fail_after=3000, error=error), len(DATA), chunk_size=1024)
    assert b"".join(reader) == DATA[:3000]
    assert reader.received == 3000
    assert reader.disconnected
    assert not reader.complete


def test_a_failing_chunked_stream_is_a_disconnect() -> None:
    reader = BodyReader(Stream(DATA, fail_after=3000), None, chunk_size=1024)
    assert b"".join(reader) == DATA[:3000]
    assert reader.disconnected


def test_a_failure_on_the_overflow_probe_is_no_overflow() -> None:
    reader = BodyReader(Stream(DATA, fail_after=2048), None, chunk_size=1024)
    reader.limit = 2048
    assert b"".join(reader) == DATA[:2048]
    assert not reader.overflow
    assert reader.disconnected


def test_idle_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(body_module.time, "monotonic", lambda: now[0])
    reader = BodyReader(Stream(DATA), len(DATA), chunk_size=1024)
    now[0] = 105.0
    assert reader.idle_seconds == 5.0
    iterator: Any = iter(reader)
    next(iterator)
    assert reader.idle_seconds == 0.0
    now[0] = 107.5
    assert reader.idle_seconds == 2.5
