"""Write-behind under the gevent worker: the next chunk is received while the last is written.

Run in a child process that gevent monkey-patches (as gunicorn's gevent worker does), so the
thread pool is the real one. What a user would notice if this broke: bytes written out of order
or after the file was closed (a corrupt upload), also when a small write is done inline, or a
failed disk write that goes unreported (an offset acknowledged for bytes that are not there).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import os, sys, time
    import gevent
    from tusserver.offload import WriteBehind, event_loop_active

    assert event_loop_active()
    path = sys.argv[1]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)

    def slow_write(data, position):
        time.sleep(0.05)  # a real thread: the loop must keep running meanwhile
        os.pwrite(fd, data, position)

    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(100)])
    behind = WriteBehind()
    started = time.monotonic()
    for index in range(6):
        behind.submit(slow_write, bytes([65 + index]) * 4, index * 4)
    behind.wait()
    elapsed = time.monotonic() - started
    assert os.pread(fd, 24, 0) == b"AAAABBBBCCCCDDDDEEEEFFFF", os.pread(fd, 24, 0)
    assert len(ticks) >= 10, "the event loop stalled while the writes ran"

    # A small write done inline (a slow sender's chunk) still lands after the one in flight.
    behind.submit(slow_write, b"XXXX", 0)
    behind.submit(os.pwrite, fd, b"YY", 0, inline=True)
    assert os.pread(fd, 4, 0) == b"YYXX", os.pread(fd, 4, 0)

    def failing(*_):
        raise OSError(28, "No space left on device")

    behind.submit(failing)
    try:
        behind.submit(slow_write, b"late", 0)
    except OSError as exc:
        assert exc.errno == 28
    else:
        raise AssertionError("a failed write was not reported")

    closed = []
    behind.submit(slow_write, b"last", 24)
    behind.then(lambda: closed.append(os.pread(fd, 4, 24)))
    assert closed == [], "ran while a write was still in flight"
    gevent.sleep(0.3)
    assert closed == [b"last"], closed

    # `call` returns the job's result; a greenlet killed while it waits (a worker shutting
    # down) leaves the job in flight, so the clean-up still waits for the job to end.
    assert behind.call(lambda: os.pwrite(fd, b"ret", 30)) == 3
    after_kill = []
    waiter = gevent.spawn(behind.call, slow_write, b"held", 40)
    gevent.sleep(0.01)
    waiter.kill()
    behind.then(lambda: after_kill.append(os.pread(fd, 4, 40)))
    assert after_kill == [], "cleaned up under a job still running"
    gevent.sleep(0.3)
    assert after_kill == [b"held"], after_kill
    ticker.kill()
    print("ok")
    """
)


def test_write_behind_keeps_order_reports_failures_and_cleans_up_after_the_last_write(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "data")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
