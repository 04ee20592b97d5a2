"""A fast sender's body moved socket -> pipe -> file on one pool trip (`DirectInput.move`).

Driven through the pieces the server really uses: gunicorn's own request-body objects over a
loopback TCP connection, `BodyReader`, and `LocalStore.write` into a real file. What a user
would notice: the file holds exactly the body at the upload's offset, bytes that arrived before
the client went away are kept and counted, an interrupt (a lost lock) ends the body keeping what
arrived, the data is fdatasync'd once per request with fsync on, and no file or pipe is left
open.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from tests.unit.test_splice import tcp_pair
from tusserver import splice
from tusserver.body import BodyReader
from tusserver.models import UploadInfo
from tusserver.storage.local import LocalStore
from tusserver.wsgi_input import DirectInput, body_stream

pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="os.splice is Linux-only")

MiB = 1024 * 1024
BODY = os.urandom(9 * MiB + 4099)
OFFSET = 12345
UPLOAD_ID = "0123456789abcdef0123456789abcdef"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def body_over(receiver, length: int, blocking: bool = True) -> BodyReader:  # type: ignore[no-untyped-def]
    """The request body as the worker hands it to the app: gunicorn's Body, read by
    `DirectInput`, iterated by `BodyReader`. `blocking`: a socket as gthread's are (`move`
    gives it a timeout itself); else as gevent's."""
    receiver.setblocking(blocking)
    reader = LengthReader(SocketUnreader(receiver), length)
    stream = body_stream({"wsgi.input": Body(reader)})
    assert isinstance(stream, DirectInput)
    return BodyReader(stream, length, sock=receiver)


@pytest.fixture
def fdatasyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real fdatasync calls (each still runs)."""
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def store_and_info(tmp_path: Path) -> tuple[LocalStore, UploadInfo, Path]:
    store = LocalStore(tmp_path, fsync=True, splice=True)
    info = UploadInfo(id=UPLOAD_ID, length=OFFSET + len(BODY), offset=OFFSET)
    path = tmp_path / UPLOAD_ID
    path.write_bytes(b"k" * OFFSET)  # the committed bytes before this request
    return store, info, path


@pytest.mark.parametrize("blocking", [True, False], ids=["gthread-socket", "gevent-socket"])
def test_a_fast_body_lands_exactly_at_the_offset_synced_once(
    tmp_path: Path, fdatasyncs: list[int], blocking: bool
) -> None:
    store, info, path = store_and_info(tmp_path)
    sender, receiver = tcp_pair()
    before = open_fds()
    sending = threading.Thread(target=sender.sendall, args=(BODY,))
    sending.start()
    if not blocking:
        time.sleep(0.2)  # bytes already waiting: the thread starts on them at once
    body = body_over(receiver, len(BODY), blocking)
    result = store.write(info, body)
    sending.join()

    assert result.bytes_written == len(BODY)
    assert result.spliced == len(BODY)  # every byte went socket -> pipe -> file
    assert body.complete
    assert path.read_bytes() == b"k" * OFFSET + BODY
    assert len(fdatasyncs) == 1
    assert open_fds() == before  # the file and both pipes are closed
    sender.close()
    receiver.close()


def test_a_body_cut_short_keeps_what_arrived(tmp_path: Path, fdatasyncs: list[int]) -> None:
    store, info, path = store_and_info(tmp_path)
    sender, receiver = tcp_pair()
    sent = 3 * MiB + 17
    sender.sendall(BODY[:sent])
    sender.close()  # the client goes away: every byte sent arrives, then the end
    before = open_fds()
    body = body_over(receiver, len(BODY))
    result = store.write(info, body)

    assert result.bytes_written == sent
    assert body.disconnected
    assert path.read_bytes()[: OFFSET + sent] == b"k" * OFFSET + BODY[:sent]
    assert len(fdatasyncs) == 1  # what arrived is durable before it can be committed
    assert open_fds() == before
    receiver.close()


def test_an_interrupt_ends_a_fast_body_keeping_what_arrived(tmp_path: Path) -> None:
    """The lock keeper's interrupt (a lost lock) while the client still sends, fast."""
    store, info, path = store_and_info(tmp_path)
    sender, receiver = tcp_pair()
    body = body_over(receiver, len(BODY))
    stop_sending = threading.Event()

    def send_then_stall() -> None:
        sender.sendall(BODY[: 2 * MiB])
        stop_sending.wait(10)

    sending = threading.Thread(target=send_then_stall)
    sending.start()
    timer = threading.Timer(0.5, body.interrupt, args=("lock lost",))
    timer.start()
    started = time.monotonic()
    result = store.write(info, body)
    took = time.monotonic() - started
    stop_sending.set()
    sending.join()

    assert body.interrupted == "lock lost"
    assert result.bytes_written == 2 * MiB
    assert path.read_bytes()[: OFFSET + 2 * MiB] == b"k" * OFFSET + BODY[: 2 * MiB]
    assert took < 5, "the interrupt must end the body, not the hold time or the client"
    sender.close()
    receiver.close()


def test_the_socket_wakes_for_any_byte_after_a_slow_start(tmp_path: Path) -> None:
    """A body whose first read found 32-64 KiB waiting (a slow start: copied, not spliced)
    must leave the connection's SO_RCVLOWAT at 1. The setting outlives the request: a keep-alive
    connection left waiting for 32 KiB never woke for a small next request (a browser's last,
    99-byte PATCH hung until the client gave up)."""
    sender, receiver = tcp_pair()
    size = 5 * MiB
    body = body_over(receiver, size, blocking=False)
    sender.sendall(BODY[: 40 * 1024])
    time.sleep(0.2)
    stream = body.stream
    piece = stream.fill_pipe(splice.Pipes(), size)  # type: ignore[attr-defined]
    assert isinstance(piece, bytes | bytearray) and len(piece) == 40 * 1024
    lowat = receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)
    assert lowat == 1, f"SO_RCVLOWAT left at {lowat}"
    sender.close()
    receiver.close()
