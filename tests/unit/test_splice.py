"""`tusserver.splice`: socket -> pipe -> file moves bytes exactly, and falls back where refused."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from tusserver import splice
from tusserver.storage.local import _drain

pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="os.splice is Linux-only")

DATA = os.urandom(300 * 1024 + 7)


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection (what the server splices from): (sender, non-blocking receiver)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
    receiver.setblocking(False)
    return sender, receiver


def send_later(sender: socket.socket, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=sender.sendall, args=(data,))
    thread.start()
    return thread


def fill(pipe: splice.Pipe, sock: socket.socket, count: int) -> int:
    """Move `count` bytes from the socket into the pipe, waiting as the server does."""
    held = 0
    while held < count:
        moved = pipe.fill_from(sock.fileno(), count - held)
        if moved is None:
            assert splice.wait_readable(sock.fileno(), 5)
            continue
        assert moved, "the socket ended early"
        held += moved
    return held


def test_bytes_reach_the_file_at_the_offset_asked(tmp_path: Path) -> None:
    sender, receiver = tcp_pair()
    target = tmp_path / "upload"
    target.write_bytes(b"kept" * 10)
    fd = os.open(target, os.O_WRONLY)
    try:
        with splice.Pipe() as pipe:
            sending = send_later(sender, DATA)
            first = fill(pipe, receiver, 100_000)
            _drain(pipe, fd, 40, first)
            rest = fill(pipe, receiver, len(DATA) - first)
            _drain(pipe, fd, 40 + first, rest, flush=True)
            sending.join()
    finally:
        os.close(fd)
        sender.close()
        receiver.close()
    assert target.read_bytes() == b"kept" * 10 + DATA


def test_a_file_that_refuses_splice_still_gets_the_bytes(tmp_path: Path) -> None:
    sender, receiver = tcp_pair()
    target = tmp_path / "upload"
    # splice(2) refuses a file opened for appending (EINVAL): the copy fallback must write.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with splice.Pipe() as pipe:
            send_later(sender, DATA[:100_000]).join()
            held = fill(pipe, receiver, 100_000)
            with pytest.raises(splice.Unsupported):
                pipe.drain_to(fd, 0, held)
            _drain(pipe, fd, 0, held)
    finally:
        os.close(fd)
        sender.close()
        receiver.close()
    assert target.read_bytes() == DATA[:100_000]


def test_the_end_of_the_stream_and_an_empty_socket_are_told_apart() -> None:
    sender, receiver = tcp_pair()
    with splice.Pipe() as pipe:
        assert pipe.fill_from(receiver.fileno(), 1000) is None  # nothing yet
        assert not splice.wait_readable(receiver.fileno(), 0.05)
        sender.close()
        assert splice.wait_readable(receiver.fileno(), 5)
        assert pipe.fill_from(receiver.fileno(), 1000) == 0  # the end
    receiver.close()


def test_two_pipes_take_turns() -> None:
    pipes = splice.Pipes()
    try:
        first, second = pipes.next(), pipes.next()
        assert first is not second
        assert pipes.next() is first
    finally:
        pipes.close()
