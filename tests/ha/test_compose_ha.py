"""The compose `ha` profile: a Sentinel set the app can be pointed at, checked without Docker.

`docker-compose config` renders the profile offline (as tests/e2e/test_compose.py does for the
default stack), and compose/redis-ha.sh -- what each member of the set runs in its container --
is run here for real, with the bundled Valkey binary standing in for `redis-server`: it must
produce a working set (the app stores uploads through it, and the sentinels promote the replica
when the master is killed), keep the passwords off the command lines, and keep a member's
configuration across restarts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.test_compose import COMPOSE, PASSWORDS, rendered
from tusserver import create_app
from tusserver.embedded_redis import find_binary, free_port
from tusserver.settings import Settings
from tusserver.state.connect import connect_settings

SCRIPT = COMPOSE / "redis-ha.sh"
HA_SERVICES = {"redis-ha-1", "redis-ha-2", "sentinel-1", "sentinel-2", "sentinel-3"}
TUS = {"Tus-Resumable": "1.0.0"}


def env_example_lines(marker: str) -> dict[str, str]:
    """The commented-out `NAME=value` lines of env.example whose comment carries `marker`."""
    lines = (COMPOSE / "env.example").read_text().splitlines()
    found = {}
    for index, line in enumerate(lines):
        match = re.match(r"^#([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and marker in lines[index - 1]:
            found[match.group(1)] = match.group(2)
    return found


def test_the_ha_profile_adds_a_sentinel_set_on_the_pinned_redis_image() -> None:
    services = rendered("--profile", "ha")["services"]

    assert services.keys() >= HA_SERVICES
    for name in HA_SERVICES:
        service = services[name]
        assert service["profiles"] == ["ha"]
        assert service["image"] == services["redis"]["image"]
        assert service["command"][:2] == ["/bin/sh", "/redis-ha.sh"]
        assert service["user"] == "redis", "not root in the container"
        assert not service.get("ports"), "reachable on the compose network only"
        assert service["healthcheck"]["test"][0] == "CMD-SHELL"
    roles = {name: services[name]["command"][2] for name in HA_SERVICES}
    assert roles == {
        "redis-ha-1": "master",
        "redis-ha-2": "replica",
        "sentinel-1": "sentinel",
        "sentinel-2": "sentinel",
        "sentinel-3": "sentinel",
    }
    volumes = [str(services[name]["volumes"]) for name in sorted(HA_SERVICES)]
    assert len({re.findall(r"([\w-]+-data)", v)[0] for v in volumes}) == 5, "a volume each"
    for name in HA_SERVICES - {"redis-ha-1"}:
        assert services[name]["depends_on"] == {"redis-ha-1": {"condition": "service_healthy"}}


def test_env_example_points_the_app_at_the_ha_profile() -> None:
    overrides = env_example_lines("(ha)")
    assert set(overrides) == {
        "TUSSERVER_REDIS_MODE",
        "TUSSERVER_REDIS_SENTINELS",
        "TUSSERVER_REDIS_SENTINEL_MASTER",
        "TUSSERVER_REDIS_WAIT_REPLICAS",
    }
    secrets = {
        "TUSSERVER_REDIS_PASSWORD": "data-pw-1",
        "TUSSERVER_REDIS_SENTINEL_PASSWORD": "s-pw-1",
    }
    config = rendered("--profile", "ha", extra_env={**PASSWORDS, **overrides, **secrets})
    services = config["services"]
    app_env = services["app"]["environment"]

    for name, value in {**overrides, **secrets}.items():
        assert app_env[name] == value
    Settings.from_env({k: v for k, v in app_env.items() if v is not None})  # a valid setup
    for address in overrides["TUSSERVER_REDIS_SENTINELS"].split(","):
        host, port = address.split(":")
        assert services[host]["command"][2] == "sentinel" and port == "26379"
    for name in HA_SERVICES:
        env = services[name]["environment"]
        assert env["REDIS_PASSWORD"] == "data-pw-1"
        assert env["SENTINEL_PASSWORD"] == "s-pw-1"
        assert env["MASTER_NAME"] == overrides["TUSSERVER_REDIS_SENTINEL_MASTER"]
        assert env["ANNOUNCE_HOST"] == name


def test_the_script_is_valid_posix_shell() -> None:
    assert SCRIPT.read_text().startswith("#!/bin/sh")
    assert subprocess.run(["sh", "-n", str(SCRIPT)], check=False).returncode == 0
    unknown = subprocess.run(["sh", str(SCRIPT), "primary"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown role" in unknown.stderr


class Member:
    """One member of the set, started by compose/redis-ha.sh as its container would."""

    def __init__(self, role: str, folder: Path, env: dict[str, str]):
        self.role = role
        self.folder = folder
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "DATA_DIR": str(folder)}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Member:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["sh", str(SCRIPT), self.role], env=self.env, stdout=subprocess.DEVNULL
        )
        return self

    def client(self, password: str) -> redis.Redis:
        return redis.Redis(
            port=self.port, password=password, socket_timeout=1, decode_responses=True
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)


def wait_until(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except redis.RedisError:
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {check}")


@pytest.fixture
def script_set(tmp_path: Path) -> Iterator[list[Member]]:
    """redis-ha.sh master, replica and three sentinels on 127.0.0.1, with both passwords."""
    base = {
        "PATH": os.environ["PATH"],
        "REDIS_SERVER": find_binary(),
        "BIND": "127.0.0.1",
        "MASTER_HOST": "127.0.0.1",
        "ANNOUNCE_HOST": "127.0.0.1",
        "MASTER_NAME": "tusmaster",
        "REDIS_PASSWORD": "data-secret-7",
        "SENTINEL_PASSWORD": "sentinel-secret-7",
        "DOWN_AFTER_MS": "1000",
        "FAILOVER_TIMEOUT_MS": "3000",
    }
    master = Member("master", tmp_path / "redis-ha-1", base).start()
    members = [master]
    try:
        wait_until(lambda: master.client("data-secret-7").ping())
        base["MASTER_PORT"] = str(master.port)
        members.append(Member("replica", tmp_path / "redis-ha-2", base).start())
        members += [
            Member("sentinel", tmp_path / f"sentinel-{i}", base).start() for i in range(1, 4)
        ]
        yield members
    finally:
        for member in members:
            member.stop()


def test_the_script_makes_a_set_the_app_uses_and_that_fails_over(
    script_set: list[Member], data_dir: Path
) -> None:
    master, replica, *sentinels = script_set
    data = replica.client("data-secret-7")
    wait_until(lambda: data.info("replication").get("master_link_status") == "up")
    for sentinel in sentinels:
        admin = sentinel.client("sentinel-secret-7")
        wait_until(lambda admin=admin: len(admin.sentinel_sentinels("tusmaster")) == 2)
        # A sentinel learns of the replica only from the master's INFO (every 10 s); killed
        # before that, the master leaves no replica to promote and the failover never comes.
        wait_until(lambda admin=admin: _knows_a_healthy_replica(admin), timeout=40)
    settings = Settings(
        data_dir=data_dir,
        auth="none",
        redis_mode="sentinel",
        redis_sentinels=tuple(f"127.0.0.1:{s.port}" for s in sentinels),
        redis_sentinel_master="tusmaster",
        redis_password="data-secret-7",
        redis_sentinel_password="sentinel-secret-7",
    )
    app = create_app(settings, redis_client=connect_settings(settings))
    client = app.test_client()
    octet = {**TUS, "Content-Type": "application/offset+octet-stream"}
    try:
        created = client.post("/files/", headers={**TUS, "Upload-Length": "4"})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        first = client.patch(url, data=b"ab", headers={**octet, "Upload-Offset": "0"})
        assert first.status_code == 204
        key = f"{settings.redis_prefix}upload:{{{url.rsplit('/', 1)[-1]}}}"
        wait_until(lambda: data.hget(key, "offset") == "2")  # replicated (no WAIT here)

        master.stop(signal.SIGKILL)
        wait_until(lambda: data.info("replication")["role"] == "master")
        assert wait_until(lambda: _offset(client, url)) == "2"
        last = client.patch(url, data=b"cd", headers={**octet, "Upload-Offset": "2"})
        assert last.status_code == 204, last.text
    finally:
        app.extensions["tusserver"].keeper.stop()

    # A restarted member keeps the configuration the failover rewrote: the sentinel still
    # follows the promoted node, not the first master its file was written for.
    sentinels[0].stop()
    sentinels[0].start()
    admin = sentinels[0].client("sentinel-secret-7")
    address = wait_until(lambda: admin.sentinel_get_master_addr_by_name("tusmaster"))
    assert int(address[1]) == replica.port
    for member in script_set:
        conf = member.folder / f"{member.role}.conf"
        assert conf.stat().st_mode & 0o077 == 0, f"{conf} is readable by others"
        assert member.process is not None
        if member.process.poll() is None:
            cmdline = Path(f"/proc/{member.process.pid}/cmdline").read_bytes()
            assert b"secret-7" not in cmdline, cmdline


def _offset(client: Any, url: str) -> str | None:
    response = client.head(url, headers=TUS)
    return response.headers.get("Upload-Offset") if response.status_code == 200 else None


def _knows_a_healthy_replica(sentinel: redis.Redis) -> bool:
    replicas = sentinel.sentinel_slaves("tusmaster")
    return any(
        r.get("master-link-status") == "ok" and not ({"s_down", "o_down"} & set(r["flags"]))
        for r in replicas
    )
