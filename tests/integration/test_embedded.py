"""The embedded redis-server: AOF on, data kept across restarts and crashes, one owner per dir."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from analytics.embedded import EmbeddedRedis, EmbeddedRedisError, RestartDelay
from tests.helpers import wait_for


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
    assert config["appendfsync"] == "always"
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


# -- supervision: a server that dies is reaped and started again ---------------------------


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` (Z for a zombie nobody reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def restart_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "analytics.embedded" and r.levelno == logging.WARNING
    ]


def test_the_restart_delay_doubles_while_the_server_keeps_dying_and_resets_once_steady() -> None:
    delay = RestartDelay(first=0.5, cap=10.0, steady=30.0)
    assert [delay.after(ran_for=1.0) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert delay.after(ran_for=30.0) == 0.5  # it had run for a while: a new first death
    assert delay.after(ran_for=0.2) == 1


def test_a_killed_server_is_reaped_and_started_again_on_its_own_files(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="analytics.embedded")
    server = EmbeddedRedis(data_dir, restart_delay=RestartDelay(first=0.05))
    server.start()
    try:
        server.supervise()
        url = server.url
        client = redis.Redis.from_url(url)
        client.config_set("appendfsync", "always")
        client.set("va:{demo}:marker", "before-kill")
        client.close()
        first = int(server.pid_path.read_text())
        os.kill(first, signal.SIGKILL)

        def answers_again() -> bool:
            pid = int(server.pid_path.read_text())
            return pid != first and bool(redis.Redis.from_url(url).ping())

        wait_for(answers_again, "the server started again", seconds=10)
        assert process_state(first) is None  # reaped, not left a zombie
        assert server.url == url  # the same socket: every client's URL still works
        again = redis.Redis.from_url(url)
        assert again.get("va:{demo}:marker") == b"before-kill"  # from the AOF
        again.close()
        assert server.restarts == 1
        [warning] = restart_warnings(caplog)
        assert f"(pid {first}) killed by SIGKILL" in warning.getMessage()
        # The lock stayed ours throughout: the directory is still refused to anyone else.
        with pytest.raises(EmbeddedRedisError, match="another analytics process"):
            EmbeddedRedis(data_dir, lock_wait=0.2).start()
        second = int(server.pid_path.read_text())
    finally:
        server.stop()
    assert process_state(second) is None  # stopped and reaped, and not started again
    assert server.process is None and server.restarts == 1
    assert len(restart_warnings(caplog)) == 1  # the stop is no death to report


def test_a_server_that_keeps_dying_is_started_again_later_each_time(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="analytics.embedded")
    server = EmbeddedRedis(data_dir, restart_delay=RestartDelay(first=0.05, cap=0.2))
    binary = server.binary
    server.start()
    try:
        server.supervise()
        server.binary = "/bin/false"  # each start fails at once, as a broken server would
        os.kill(int(server.pid_path.read_text()), signal.SIGKILL)
        wait_for(lambda: len(restart_warnings(caplog)) >= 5, "five deaths", seconds=10)
        delays = [r.args[-1] for r in restart_warnings(caplog)[:5] if isinstance(r.args, tuple)]
        assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]
        assert "exited with 1" in restart_warnings(caplog)[1].getMessage()
        server.binary = binary  # repaired: the next start takes
        wait_for(lambda: redis.Redis.from_url(server.url).ping(), "the server", seconds=10)
    finally:
        server.stop()


def test_a_stop_during_the_restart_delay_starts_nothing(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="analytics.embedded")
    server = EmbeddedRedis(data_dir, restart_delay=RestartDelay(first=600))
    server.start()
    server.supervise()
    first = int(server.pid_path.read_text())
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: restart_warnings(caplog), "the death to be noticed", seconds=10)
    server.stop(timeout=5)  # the supervisor ends at once, not after its delay
    assert "embedded-redis" not in {t.name for t in threading.enumerate()}
    assert server.restarts == 0
    assert process_state(first) is None
    with EmbeddedRedis(data_dir, lock_wait=0.2) as again:  # the directory is free again
        assert _client(again).ping()
