"""A Redis outage under load is a few log lines, not a flood, and the uploads survive it.

The server reaches Redis through a TCP proxy the test cuts: Redis is unreachable for 10 s while
three uploads stream their bodies. The lock keeper checks each upload five times a second, so
every check fails during the outage; the log must still say it in a handful of lines (Redis
went away, Redis is back), and the uploads must finish once Redis is back.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from tests.support.live import LiveServer, live_server
from tests.support.rawhttp import RawConnection, RawResponse
from tests.support.tcp_proxy import TcpProxy

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
STEP = 32 * 1024
STEPS = 80  # one step every 0.2 s: each body takes about 16 s
OUTAGE = 10.0


def _proxy_for(redis_url: str) -> TcpProxy:
    """A cuttable TCP proxy to the session's Redis (a Unix socket or a TCP address)."""
    target = urlsplit(redis_url)
    if target.scheme == "unix":
        return TcpProxy.to_unix(target.path)
    return TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)


def _through(proxy: TcpProxy, redis_url: str) -> str:
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis://{proxy.address}/0"
    return urlunsplit((parts.scheme, proxy.address, parts.path, "", ""))


def _slow_patch(server: LiveServer, path: str, results: list[RawResponse]) -> None:
    """PATCH the whole upload in one request whose body trickles in."""
    with RawConnection(server.url, timeout=60) as conn:
        headers = {**OCTET, "Upload-Offset": "0", "Content-Length": str(STEP * STEPS)}
        conn.send("PATCH", path, headers)
        for _ in range(STEPS):
            conn.sock.sendall(b"r" * STEP)
            time.sleep(0.2)
        results.append(conn.read_response())


def _lines_between(log: str, start: int, end: int) -> list[str]:
    return [line for line in log[start:end].splitlines() if line.strip()]


def test_redis_down_for_10s_under_3_uploads_logs_a_few_lines(
    tmp_path: Path, redis_url: str
) -> None:
    with _proxy_for(redis_url) as proxy:
        # Locks outlive the outage here, so each upload keeps streaming through it: this test is
        # about what the log says. (With the default 10 s lock, a writer whose lock lapsed while
        # Redis was away stops and the client resumes: see tests/faults.)
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
            results: list[RawResponse] = []
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
            assert [r.status for r in results] == [204, 204, 204], [r.body for r in results]
            for path in paths:
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
