"""A local Redis Cluster of three masters on loopback ports, for the benchmarks and the tests.

``local_cluster()`` starts the redis-server that the embedded mode runs, once per master, in
cluster mode (no persistence), joins them with CLUSTER MEET, splits the 16384 slots between
them with CLUSTER ADDSLOTS, waits until every node reports ``cluster_state:ok``, and stops
them all when its block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from analytics.embedded import die_with_parent, free_port, redis_server_binary

HOST = "127.0.0.1"
SLOTS = 16384
MASTERS = 3
BUS_OFFSET = 10000  # Redis 6.2 always puts the cluster bus on port + 10000
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Cluster:
    ports: tuple[int, ...]
    first_slots: tuple[int, ...]  # first slot of each master's range, in port order

    @property
    def url(self) -> str:
        return f"redis+cluster://{HOST}:{self.ports[0]}"

    def port_of_slot(self, slot: int) -> int:
        owner = self.ports[0]
        for port, first in zip(self.ports, self.first_slots, strict=True):
            if slot >= first:
                owner = port
        return owner

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, socket_timeout=5)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> tuple[int, ...]:
    """Free ports whose bus port (port + 10000) is a valid, free port too."""
    ports: list[int] = []
    for _ in range(200):
        port = free_port(HOST)
        if port + BUS_OFFSET <= 65535 and port not in ports and _port_free(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return tuple(ports)
    raise RuntimeError("no free loopback ports for a Redis Cluster")


def cluster_info(client: redis.Redis) -> dict[str, str]:
    raw = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def stop_nodes(processes: dict[int, subprocess.Popen[bytes]], workdir: Path) -> None:
    """Stops every redis-server of ``processes`` (SIGTERM, a kill past 10 s) and removes their
    folder."""
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(workdir, ignore_errors=True)


def wait_for_nodes(
    condition: Callable[[], object],
    what: str,
    deadline: float,
    processes: dict[int, subprocess.Popen[bytes]],
    *,
    killed: Callable[[int], bool] = lambda port: False,
) -> None:
    """Polls ``condition`` until it holds, a redis-server of ``processes`` dies (but those
    ``killed`` on purpose), or ``deadline`` (monotonic) passes."""
    last: Exception | None = None
    while True:
        dead = [
            str(port) for port, p in processes.items() if p.poll() is not None and not killed(port)
        ]
        if dead:
            raise RuntimeError(f"redis-server on port(s) {', '.join(dead)} exited ({what})")
        try:
            if condition():
                return
        except (redis.RedisError, OSError) as err:
            last = err
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no {what} in time: {last}")
        time.sleep(0.05)


@contextlib.contextmanager
def local_cluster(masters: int = MASTERS, timeout: float = START_TIMEOUT) -> Iterator[Cluster]:
    """``masters`` cluster-enabled masters owning an equal share of the slots each."""
    workdir = Path(tempfile.mkdtemp(prefix="analytics-cluster-"))
    processes: dict[int, subprocess.Popen[bytes]] = {}
    nodes: list[redis.Redis] = []
    try:
        ports = cluster_ports(masters)
        for port in ports:
            command = [
                redis_server_binary(),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                "--port", str(port),
                "--bind", HOST,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(workdir),
            ]  # fmt: skip
            processes[port] = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # the nodes die with their parent, come what may
            )
        deadline = time.monotonic() + timeout
        cluster = Cluster(ports, tuple(i * SLOTS // masters for i in range(masters)))
        nodes = [cluster.node(port) for port in ports]
        for node in nodes:
            wait_for_nodes(node.ping, "ping", deadline, processes)
        for port in ports[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", HOST, port)  # type: ignore[no-untyped-call]
        bounds = [*cluster.first_slots, SLOTS]
        for i, node in enumerate(nodes):
            slots = range(bounds[i], bounds[i + 1])
            node.execute_command("CLUSTER", "ADDSLOTS", *slots)  # type: ignore[no-untyped-call]

        def ready() -> bool:
            infos = [cluster_info(node) for node in nodes]
            return all(
                info.get("cluster_state") == "ok"
                and info.get("cluster_known_nodes") == str(masters)
                and info.get("cluster_slots_ok") == str(SLOTS)
                for info in infos
            )

        wait_for_nodes(ready, "cluster_state:ok on every node", deadline, processes)
        yield cluster
    finally:
        for node in nodes:
            node.close()
        stop_nodes(processes, workdir)
