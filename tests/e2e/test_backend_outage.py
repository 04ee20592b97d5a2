"""A Redis outage under load is a few log lines, not a flood, and the uploads survive it.

The server reaches Redis through a TCP proxy the test cuts: Redis is unreachable for 10 s while
three uploads stream their bodies. The lock keeper checks each upload five times a second, so
every check fails during the outage; the log must still say it in a handful of lines (Redis
went away, Redis is back), and the uploads must complete once Redis is back (resumed, as a tus
client does, if their locks expired meanwhile).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests

from tests.support.live import LiveServer, live_server
from tests.support.rawhttp import RawConnection
from tests.support.tcp_proxy import TcpProxy

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
STEP = 32 * 1024
STEPS = 80  # one step every 0.2 s: each body takes about 16 s
OUTAGE = 10.0


def _proxy_for(redis_url: str) -> TcpProxy:
    """A cuttable TCP front for the session's Redis (a Unix socket or a TCP port)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return TcpProxy.to_unix_socket(parts.path)
    return TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)


def _through(proxy: TcpProxy, redis_url: str) -> str:
    """`redis_url` (same password and database) reached through the proxy."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        database = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis://{proxy.address}/{database}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{proxy.address}" if userinfo else proxy.address
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _slow_patch(server: LiveServer, path: str, results: list[int | None]) -> None:
    """PATCH the whole upload in one request whose body trickles in; its status, or None if the
    server ended the request early (its lock expired during the outage) and closed."""
    with RawConnection(server.url, timeout=60) as conn:
        headers = {**OCTET, "Upload-Offset": "0", "Content-Length": str(STEP * STEPS)}
        conn.send("PATCH", path, headers)
        try:
            for _ in range(STEPS):
                conn.sock.sendall(b"r" * STEP)
                time.sleep(0.2)
        except OSError:
            pass  # the server stopped reading: its answer (if any) tells what it kept
        try:
            results.append(conn.read_response().status)
        except (OSError, ConnectionError):
            results.append(None)


def _finish(server: LiveServer, path: str) -> None:
    """What a tus client does after a failed PATCH: ask for the offset, send the rest."""
    head = requests.head(f"{server.url}{path}", headers=TUS, timeout=10)
    assert head.status_code == 200
    offset = int(head.headers["Upload-Offset"])
    if offset < STEP * STEPS:
        rest = requests.patch(
            f"{server.url}{path}",
            data=b"r" * (STEP * STEPS - offset),
            headers={**OCTET, "Upload-Offset": str(offset)},
            timeout=30,
        )
        assert rest.status_code == 204, rest.text


def _lines_between(log: str, start: int, end: int) -> list[str]:
    return [line for line in log[start:end].splitlines() if line.strip()]


def test_redis_down_for_10s_under_3_uploads_logs_a_few_lines(
    tmp_path: Path, redis_url: str
) -> None:
    with _proxy_for(redis_url) as proxy:
        # Locks outlive the outage (the default 10 s TTL would expire with it, ending each
        # upload's request, which then logs its own line: a consequence, not the flood).
        env = {"TUSSERVER_REDIS_URL": _through(proxy, redis_url), "TUSSERVER_LOCK_TTL": "30"}
        with live_server(tmp_path / "data", redis_url, env=env) as server:
            paths = []
            for _ in range(3):
                created = requests.post(
                    f"{server.url}/files/",
                    headers={**TUS, "Upload-Length": str(STEP * STEPS)},
                    timeout=10,
                )
                assert created.status_code == 201
                paths.append(urlsplit(created.headers["Location"]).path)
            results: list[int | None] = []
            senders = [
                threading.Thread(target=_slow_patch, args=(server, path, results)) for path in paths
            ]
            for sender in senders:
                sender.start()
            time.sleep(2)  # every upload holds its lock and streams

            before = len(server.log())
            proxy.cut()
            time.sleep(OUTAGE)
            proxy.restore()
            time.sleep(2)  # the keepers' next checks succeed
            log = server.log()
            during = _lines_between(log, before, len(log))

            for sender in senders:
                sender.join(timeout=60)
            # Each PATCH finished, or (its lock expired while Redis was away) was ended early
            # after committing what it had; either way a resume completes the upload.
            assert len(results) == 3 and set(results) <= {204, 409, 423, 503, None}, results
            for path in paths:
                _finish(server, path)
                head = requests.head(f"{server.url}{path}", headers=TUS, timeout=10)
                assert head.headers["Upload-Offset"] == str(STEP * STEPS)

            assert len(during) < 10, "\n".join(during)
            assert any("redis unavailable" in line for line in during), during
            assert any("redis available again" in line for line in during), during
            assert "Traceback" not in log
            metrics = requests.get(f"{server.url}/metrics", timeout=10).text
            failures = re.search(
                r'tusserver_backend_failures_total\{backend="redis"\} (\S+)', metrics
            )
            assert failures is not None and float(failures.group(1)) >= 10
