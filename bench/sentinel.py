"""A local Redis primary, one replica and its Sentinels on loopback ports, for the tests.

``local_sentinel()`` starts the redis-server that the embedded mode runs three ways: a primary,
a replica of it (``replicaof``), and one or three Sentinels (the same binary with
``--sentinel``) that monitor the primary under one name, with short timeouts so that a
failover ends in a few seconds. It waits until every Sentinel sees the primary, the replica in
sync and the other Sentinels, yields the running set, and stops every process when its block
ends, however it ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from analytics.embedded import die_with_parent, free_port, redis_server_binary
from bench.cluster import stop_nodes, wait_for_nodes

HOST = "127.0.0.1"
PRIMARY_NAME = "analytics"
START_TIMEOUT = 30.0
DOWN_AFTER_MS = 1000
"""How long the primary must not answer before a Sentinel holds it down."""
FAILOVER_TIMEOUT_MS = 4000
"""Sentinel's failover-timeout: also how long before the same primary may fail over again."""


@dataclass
class SentinelSet:
    """The running servers: ports of the Redis servers and of the Sentinels."""

    redis_ports: tuple[int, ...]  # the primary's first, as started
    sentinel_ports: tuple[int, ...]
    name: str = PRIMARY_NAME
    password: str | None = None
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        secret = f":{quote(self.password, safe='')}@" if self.password else ""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{secret}{hosts}/{self.name}"

    def node(self, port: int) -> redis.Redis:
        """A plain client of the Redis server on ``port``."""
        return redis.Redis(host=HOST, port=port, password=self.password, socket_timeout=5)

    def sentinel(self, port: int | None = None) -> redis.Redis:
        """A client of the Sentinel on ``port`` (the first one by default)."""
        return redis.Redis(host=HOST, port=port or self.sentinel_ports[0], socket_timeout=5)

    def primary_port(self) -> int:
        """The port of the primary, as the first Sentinel names it now."""
        with self.sentinel() as client:
            _host, port = client.sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: promotes the replica without asking the other Sentinels."""
        with self.sentinel() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.name)

    def kill(self, port: int) -> None:
        """SIGKILL for the Redis server on ``port``: it ends as in a crash, with no last word."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def settled(self, primary: int) -> bool:
        """Whether every Sentinel names ``primary`` as the primary, it says it is one, and every
        other live Redis server is its replica, in sync."""
        for port in self.sentinel_ports:
            with self.sentinel(port) as client:
                if int(client.sentinel_get_master_addr_by_name(self.name)[1]) != primary:
                    return False
        with self.node(primary) as node:
            if node.info("replication")["role"] != "master":
                return False
        for port in self.redis_ports:
            if port == primary or self.processes[port].poll() is not None:
                continue
            with self.node(port) as node:
                info = node.info("replication")
                if (
                    info["role"] != "slave"
                    or int(info["master_port"]) != primary
                    or info["master_link_status"] != "up"
                ):
                    return False
        return True

    def wait_settled(self, primary: int, timeout: float = 30.0) -> None:
        _wait(lambda: self.settled(primary), f"{primary} the settled primary", timeout, self)


def _wait(condition: Callable[[], object], what: str, timeout: float, servers: SentinelSet) -> None:
    """Polls ``condition`` until it holds, a server we did not kill dies, or ``timeout`` ends."""
    wait_for_nodes(
        condition,
        f"Sentinel set-up: {what}",
        time.monotonic() + timeout,
        servers.processes,
        killed=lambda port: servers.processes[port].returncode == -signal.SIGKILL,
    )


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # the servers die with their parent, come what may
        )


def _sentinel_sees_everything(client: redis.Redis, name: str, others: int) -> bool:
    master = client.sentinel_master(name)
    if not isinstance(master, dict) or master["flags"] != "master":
        return False
    if master["num-other-sentinels"] < others:
        return False
    replicas: list[dict[str, Any]] = client.sentinel_slaves(name)
    return any(r["flags"] == "slave" and r["master-link-status"] == "ok" for r in replicas)


@contextlib.contextmanager
def local_sentinel(
    sentinels: int = 1, *, password: str | None = None, timeout: float = START_TIMEOUT
) -> Iterator[SentinelSet]:
    """A primary, a replica and ``sentinels`` Sentinels (quorum: a majority of them)."""
    if sentinels not in (1, 3):
        raise ValueError("one or three Sentinels")
    workdir = Path(tempfile.mkdtemp(prefix="analytics-sentinel-"))
    binary = redis_server_binary()
    servers = SentinelSet((free_port(HOST), free_port(HOST)), (), password=password)
    try:
        primary, replica = servers.redis_ports
        auth = ["requirepass " + password, "masterauth " + password] if password else []
        for port in (primary, replica):
            lines = [
                f"port {port}",
                f"bind {HOST}",
                f"dir {workdir}",
                f"dbfilename dump-{port}.rdb",
                'save ""',
                "appendonly no",
                "repl-diskless-sync yes",
                "repl-diskless-sync-delay 0",
                *auth,
            ]
            if port == replica:
                lines.append(f"replicaof {HOST} {primary}")
            conf = _write(workdir / f"redis-{port}.conf", lines)
            servers.processes[port] = _start([binary, str(conf)], workdir / f"redis-{port}.log")
        ports: list[int] = []
        while len(ports) < sentinels:
            port = free_port(HOST)
            if port not in (*servers.redis_ports, *ports):
                ports.append(port)
        servers.sentinel_ports = tuple(ports)
        quorum = sentinels // 2 + 1
        name = servers.name
        for port in ports:
            lines = [
                f"port {port}",
                f"bind {HOST}",
                f"dir {workdir}",
                f"sentinel monitor {name} {HOST} {primary} {quorum}",
                f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {name} 1",
            ]
            if password:
                lines.append(f"sentinel auth-pass {name} {password}")
            # A Sentinel rewrites its own file as it learns: one file each, writable.
            conf = _write(workdir / f"sentinel-{port}.conf", lines)
            servers.processes[port] = _start(
                [binary, str(conf), "--sentinel"], workdir / f"sentinel-{port}.log"
            )

        def ready() -> bool:
            with servers.node(primary) as node:
                info = node.info("replication")
                replica_state = info.get("slave0")
                if not isinstance(replica_state, dict) or replica_state.get("state") != "online":
                    return False
            for port in ports:
                with servers.sentinel(port) as client:
                    if not _sentinel_sees_everything(client, name, sentinels - 1):
                        return False
            return True

        _wait(ready, "Sentinels seeing the primary, its replica and each other", timeout, servers)
        yield servers
    finally:
        stop_nodes(servers.processes, workdir)
