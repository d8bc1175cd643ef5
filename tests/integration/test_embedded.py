"""The embedded redis-server: AOF on, data kept across restarts and crashes, one owner per dir."""

from __future__ import annotations

import os
import signal
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
        EmbeddedRedis(data_dir).start()
    assert _client(embedded).ping()


def test_a_crash_leaves_nothing_that_blocks_the_next_start(data_dir: Path) -> None:
    crashed = EmbeddedRedis(data_dir)
    crashed.start()
    client = _client(crashed)
    # "always" writes the AOF before answering, so the marker is durable when we pull the plug.
    client.config_set("appendfsync", "always")
    client.set("va:{demo}:marker", "before-crash")
    assert crashed.process is not None
    os.kill(crashed.process.pid, signal.SIGKILL)
    crashed.process.wait()
    crashed.process = None
    crashed.stop()  # releases the lock as the kernel would for a dead owner
    # What a crash leaves behind: a socket file nobody listens on and a stale pid.
    assert crashed.socket_path.exists()
    crashed.pid_path.write_text("999999\n")

    again = EmbeddedRedis(data_dir)
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
