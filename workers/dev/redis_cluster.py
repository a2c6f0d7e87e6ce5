"""A real Redis Cluster on loopback, for tests and benchmarks: ``redis-server`` processes in
cluster mode (masters, each with replicas), joined and given slots with the cluster
commands themselves, no ``redis-cli`` needed.

>>> RedisCluster(masters=3, replicas=1).size
6
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workers.dev.stack import RedisServer, StackError, free_port, stop_process

__all__ = ["SLOTS", "RedisCluster"]

SLOTS = 16384


@dataclass
class RedisCluster:
    masters: int = 3
    replicas: int = 1
    #: milliseconds a master may be unreachable before its replica takes over
    node_timeout_ms: int = 2000
    servers: list[RedisServer] = field(default_factory=list)
    #: each server's cluster bus port
    bus_ports: list[int] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="workers-rc-")))

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas)

    @property
    def url(self) -> str:
        """One node's URL: the client discovers the others from it."""
        return self.servers[0].url

    def start(self, *, timeout: float = 30.0) -> RedisCluster:
        try:
            for i in range(self.size):
                folder = self.workdir / f"node{i}"
                folder.mkdir(parents=True, exist_ok=True)
                self.bus_ports.append(free_port())
                server = RedisServer(
                    durable=True,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(folder / "nodes.conf"),
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                        # the bus port defaults to port + 10000, past 65535 for a free port
                        "--cluster-port",
                        str(self.bus_ports[-1]),
                        "--appendfsync",
                        "everysec",
                    ],
                )
                server.start(folder / "redis.log", folder)
                self.servers.append(server)
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)

    def _form(self, timeout: float) -> None:
        first = self._client(self.servers[0])
        for server, bus in zip(self.servers[1:], self.bus_ports[1:], strict=True):
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", server.port, bus)
        share = SLOTS // self.masters
        for i, server in enumerate(self.servers[: self.masters]):
            last = SLOTS - 1 if i == self.masters - 1 else (i + 1) * share - 1
            self._client(server).execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        deadline = time.monotonic() + timeout
        while len(self._known(first)) < self.size:
            if time.monotonic() > deadline:
                raise StackError("redis cluster nodes did not meet")
            time.sleep(0.1)
        ids = [self._client(s).execute_command("CLUSTER", "MYID") for s in self.servers]
        for r in range(self.replicas):
            for m in range(self.masters):
                replica = self.servers[self.masters * (1 + r) + m]
                master_id = ids[m].decode() if isinstance(ids[m], bytes) else ids[m]
                self._replicate(replica, master_id, deadline)
        self.wait_ok(deadline - time.monotonic())

    def _replicate(self, replica: RedisServer, master_id: str, deadline: float) -> None:
        while True:  # the replica must have heard of the master first
            try:
                self._client(replica).execute_command("CLUSTER", "REPLICATE", master_id)
                return
            except redis.ResponseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @staticmethod
    def _known(client: redis.Redis) -> list[str]:
        nodes = client.execute_command("CLUSTER", "NODES")
        text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
        return [line for line in text.splitlines() if line.strip()]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and every live replica is in sync
        with its master."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            if server.process is None or server.process.poll() is not None:
                continue
            client = self._client(server)
            while True:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                replication = client.info("replication")
                synced = replication.get("role") == "master" or (
                    replication.get("master_link_status") == "up"
                    and not replication.get("master_sync_in_progress")
                )
                if "cluster_state:ok" in text and synced:
                    break
                if time.monotonic() > deadline:
                    raise StackError(f"redis cluster not ok after {timeout:.0f} s")
                time.sleep(0.1)

    def revive(self, server: RedisServer, *, timeout: float = 30.0) -> None:
        """Start a stopped node again from its folder: its ``nodes.conf`` remembers the
        cluster, and a master that lost its slots to a promoted replica rejoins as that
        replica's replica. Returns once the cluster is ok and the node in sync."""
        i = self.servers.index(server)
        folder = self.workdir / f"node{i}"
        server.start(folder / "redis.revived.log", folder)
        self.wait_ok(timeout)

    def master_of(self, key: str) -> RedisServer:
        """The server that holds ``key``'s slot now."""
        client = self._client(self.servers[0])
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for entry in client.execute_command("CLUSTER", "SLOTS"):
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            if start <= slot <= end:
                port = int(primary[1])
                return next(s for s in self.servers if s.port == port)
        raise StackError(f"no node serves slot {slot}")

    def stop(self) -> None:
        for server in self.servers:
            stop_process(server.process)
        shutil.rmtree(self.workdir, ignore_errors=True)
