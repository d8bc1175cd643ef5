"""The embedded redis-server: AOF on, data kept across restarts and crashes, one owner per dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from analytics.embedded import EmbeddedRedis, EmbeddedRedisError


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def embedded(data_dir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir)
    server.start()
    yield server
    server.stop()


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def test_it_listens_on_a_private_unix_socket_with_aof(embedded: EmbeddedRedis) -> None:
    assert embedded.url == f"unix://{embedded.socket_path}"
    assert oct(embedded.socket_path.stat().st_mode & 0o777) == "0o700"
    config = redis.Redis.from_url(embedded.url, decode_responses=True).config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["port"] == "0"  # no TCP listener at all
    assert Path(config["dir"]) == embedded.data_dir


def test_counts_survive_a_clean_restart(data_dir: Path) -> None:
    first = EmbeddedRedis(data_dir)
    first.start()
    _client(first).hset("va:{demo}:c:t:total", mapping={"pageviews": 1532907})
    first.stop()
    assert not first.socket_path.exists()
    second = EmbeddedRedis(data_dir)
    second.start()
    try:
        assert _client(second).hget("va:{demo}:c:t:total", "pageviews") == b"1532907"
    finally:
        second.stop()


def test_a_second_server_on_the_same_data_dir_is_refused(
    embedded: EmbeddedRedis, data_dir: Path
) -> None:
    with pytest.raises(EmbeddedRedisError, match="another analytics process"):
        EmbeddedRedis(data_dir, lock_wait=0.2).start()
    assert _client(embedded).ping()


# A service that starts the embedded Redis, makes one write durable, says so, and waits to die.
OWNER = """
import signal, sys
from pathlib import Path
import redis
import analytics.embedded as embedded
if sys.argv[2] == "no-pdeathsig":  # as on a platform without prctl
    embedded.die_with_parent = lambda: None
server = embedded.EmbeddedRedis(Path(sys.argv[1]))
server.start()
client = redis.Redis.from_url(server.url)
client.config_set("appendfsync", "always")  # durable before the answer
client.set("va:{demo}:marker", "before-crash")
print(server.process.pid, flush=True)
signal.pause()
"""


def _crashed_owner(data_dir: Path, mode: str) -> int:
    """Starts an owner process, kills it with SIGKILL, and returns its Redis's pid."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir), mode], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    redis_pid = int(owner.stdout.readline())
    owner.stdout.close()
    owner.kill()
    owner.wait(10)
    return redis_pid


def test_a_crashed_service_leaves_nothing_that_blocks_the_next_start(data_dir: Path) -> None:
    _crashed_owner(data_dir, "normal")
    # The orphaned Redis got SIGTERM from the kernel; the next start waits for it to let go.
    again = EmbeddedRedis(data_dir)
    again.start()
    try:
        assert _client(again).get("va:{demo}:marker") == b"before-crash"
    finally:
        again.stop()


def test_an_orphaned_redis_keeps_its_data_dir_locked(data_dir: Path) -> None:
    redis_pid = _crashed_owner(data_dir, "no-pdeathsig")
    try:
        with pytest.raises(EmbeddedRedisError, match="another analytics process"):
            EmbeddedRedis(data_dir, lock_wait=0.2).start()
    finally:
        os.kill(redis_pid, signal.SIGTERM)
    again = EmbeddedRedis(data_dir)  # once it has exited, the directory is free
    again.start()
    try:
        assert _client(again).get("va:{demo}:marker") == b"before-crash"
    finally:
        again.stop()


def test_a_long_data_dir_falls_back_to_loopback_with_a_password(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        assert server.url.startswith("redis://:")
        assert "@127.0.0.1:" in server.url
        assert _client(server).ping()
        host, port = server.url.rsplit("@", 1)[1].split("/")[0].split(":")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=host, port=int(port), retry=Retry(NoBackoff(), 0)).ping()
