"""A real Valkey Cluster on 127.0.0.1, started from the bundled binary for the tests.

`LocalCluster(directory, primaries=3, replicas=1).start()` launches one process per node with
`--cluster-enabled yes`, gives each primary an even share of the 16384 slots
(`CLUSTER ADDSLOTSRANGE`), joins them (`CLUSTER MEET`), attaches the replicas
(`CLUSTER REPLICATE`) and waits for every node to report `cluster_state:ok`. A small
`cluster-node-timeout` makes a killed primary's replica take over within a few seconds.

Every node requires a random password (`requirepass`, and `masterauth` for the replicas), like a
deployment should; `url` carries it and names the first node, which is all a client needs.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tusserver.embedded_redis import find_binary, free_port

SLOTS = 16384


class ClusterStartError(RuntimeError):
    """The cluster did not come up (the nodes' logs say why)."""


@dataclass
class ClusterNode:
    """One server process of the cluster."""

    port: int
    bus_port: int  # the cluster bus, named explicitly (the default, port + 10000, may be taken)
    directory: Path
    password: str
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    replica_of: str = ""  # the primary's node id, for a replica

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A plain (non-cluster) client for this node alone: for CLUSTER commands and checks."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def role(self) -> str:
        """`master` or `slave`, as the node itself says now."""
        with self.client() as client:
            return str(client.execute_command("ROLE")[0])


@dataclass
class LocalCluster:
    """`primaries` primaries with `replicas` replicas each, on ports picked free right now."""

    directory: Path
    primaries: int = 3
    replicas: int = 0
    node_timeout_ms: int = 1000
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """What `TUSSERVER_REDIS_URL` gets: any node will do; the client discovers the rest."""
        first = next(node for node in self.nodes if node.alive)
        return f"redis://:{self.password}@127.0.0.1:{first.port}/0"

    @property
    def urls(self) -> str:
        """Every live node, comma-separated: a way in that survives any one node's death."""
        live = [node for node in self.nodes if node.alive]
        return ",".join(f"redis://:{self.password}@127.0.0.1:{node.port}/0" for node in live)

    # -- start and stop --------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LocalCluster:
        count = self.primaries * (1 + self.replicas)
        try:
            for index in range(count):
                self.nodes.append(self._launch(index))
            for index in range(count):
                node = self.nodes[index] = self._answering(index, timeout)
                with node.client() as client:
                    node.node_id = client.execute_command("CLUSTER", "MYID")
            self._assign_slots()
            self._meet()
            self._attach_replicas(timeout)
            self.wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, index: int) -> ClusterNode:
        directory = self.directory / f"node{index}"
        directory.mkdir(parents=True, exist_ok=True)
        node = ClusterNode(free_port(), free_port(), directory, self.password)
        args = [
            find_binary(),
            "--port", str(node.port),
            "--cluster-port", str(node.bus_port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(directory / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # A replica may take over however long its link was down (the test kills primaries).
            "--cluster-replica-validity-factor", "0",
            # Keep the replica where the test put it: the failover test counts on the layout.
            "--cluster-allow-replica-migration", "no",
            "--requirepass", self.password,
            "--masterauth", self.password,
            "--appendonly", "no",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(directory / "server.log"),
        ]  # fmt: skip
        node.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        return node

    def _answering(self, index: int, timeout: float, attempts: int = 3) -> ClusterNode:
        """Node `index`, answering; relaunched on fresh ports if one it was given got taken.

        A port is picked free, then handed to Valkey: in between, another test (xdist runs two
        at once) can bind it, and the node exits with "Address already in use".
        """
        node = self.nodes[index]
        for attempt in range(attempts):
            try:
                self._wait_answering(node, timeout)
                return node
            except ClusterStartError:
                log = node.directory / "server.log"
                taken = log.exists() and "Address already in use" in log.read_text(errors="replace")
                if not taken or attempt == attempts - 1:
                    raise
                log.rename(log.with_suffix(f".log.{attempt}"))  # the next attempt's log is its own
                (node.directory / "nodes.conf").unlink(missing_ok=True)
                node = self._launch(index)
        raise AssertionError("unreachable")

    def _wait_answering(self, node: ClusterNode, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive:
                raise ClusterStartError(f"node on port {node.port} exited; see its server.log")
            with contextlib.suppress(redis.RedisError), node.client(0.5) as client:
                if client.ping():
                    return
            time.sleep(0.02)
        raise ClusterStartError(f"node on port {node.port} did not answer")

    def _assign_slots(self) -> None:
        share = SLOTS // self.primaries
        for index, node in enumerate(self.nodes[: self.primaries]):
            first = index * share
            last = SLOTS - 1 if index == self.primaries - 1 else first + share - 1
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)

    def _meet(self) -> None:
        first = self.nodes[0]
        with first.client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)

    def _attach_replicas(self, timeout: float) -> None:
        for index, replica in enumerate(self.nodes[self.primaries :]):
            primary = self.nodes[index % self.primaries]
            deadline = time.monotonic() + timeout
            with replica.client() as client:
                # The replica must know the primary (gossip from MEET) before it can follow it.
                while True:
                    try:
                        client.execute_command("CLUSTER", "REPLICATE", primary.node_id)
                        break
                    except redis.ResponseError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
            replica.replica_of = primary.node_id

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok` and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._settled(node) for node in self.nodes if node.alive):
                return
            time.sleep(0.05)
        raise ClusterStartError("the cluster did not reach cluster_state:ok")

    def wait_state(self, state: str, timeout: float = 30.0) -> None:
        """Until every live node reports `cluster_state:<state>` (`ok` or `fail`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = set()
            for node in self.nodes:
                if node.alive:
                    with contextlib.suppress(redis.RedisError), node.client() as client:
                        states.add(
                            _field(client.execute_command("CLUSTER", "INFO"), "cluster_state")
                        )
            if states == {state}:
                return
            time.sleep(0.05)
        raise ClusterStartError(f"the cluster did not reach cluster_state:{state}")

    def _settled(self, node: ClusterNode) -> bool:
        try:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    return False
                known = int(_field(info, "cluster_known_nodes"))
                if known < sum(1 for other in self.nodes if other.alive):
                    return False
                if node.replica_of:
                    replication = client.info("replication")
                    return replication.get("master_link_status") == "up"
                return True
        except redis.RedisError:
            return False

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                assert node.process is not None
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at and do ---------------------------------------------------------
    def primary_of(self, key: str) -> ClusterNode:
        """The node serving `key`'s slot now (asks a live node)."""
        live = next(node for node in self.nodes if node.alive)
        with live.client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if first <= slot <= last:
                    port = int(primary[1])
                    return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        return next(node for node in self.nodes if node.replica_of == primary.node_id)

    def kill(self, node: ClusterNode) -> None:
        """kill -9: no goodbye to the cluster, the others find out by timeout."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def wait_promoted(self, replica: ClusterNode, timeout: float = 30.0) -> None:
        """Until `replica` serves as a primary and the cluster is whole again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if replica.role() == "master":
                    replica.replica_of = ""
                    break
            time.sleep(0.05)
        else:
            raise ClusterStartError(f"replica on port {replica.port} was not promoted")
        self.wait_ok(max(deadline - time.monotonic(), 1.0))


def _field(info: str, name: str) -> str:
    for line in info.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def kill_pubsub_connections(client: redis.Redis | redis.RedisCluster) -> None:
    """`CLIENT KILL TYPE pubsub` on every node the client talks to (one, or the whole cluster)."""
    if isinstance(client, redis.RedisCluster):
        client.client_kill_filter(_type="pubsub", target_nodes=redis.RedisCluster.ALL_NODES)
    else:
        client.client_kill_filter(_type="pubsub")
