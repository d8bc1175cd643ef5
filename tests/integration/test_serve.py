"""The README's first command, for real: `analytics serve` with its embedded Redis."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from prometheus_client import CollectorRegistry

from analytics.embedded import free_port
from analytics.services import build_services
from analytics.settings import Settings, usable_cpus
from tests.helpers import (
    ANALYTICS,
    BROWSER_UA,
    clear_of_day_change,
    http_get,
    service_env,
    serving,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _clear_of_day_change() -> None:
    """The service reads the real clock, and tests here check today's counts."""
    clear_of_day_change()


def _post_hit(port: int, n: int, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/hit",
        data=json.dumps({"site": "demo", "url": f"https://example.vn/tin-tuc/{n}"}).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA, **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def _totals(port: int) -> dict[str, Any]:
    status, body = http_get(f"http://127.0.0.1:{port}/api/v1/sites/demo/counters")
    assert status == 200
    windows: dict[str, Any] = json.loads(body)["windows"]
    return {name: windows[name] for name in ("today", "total")}


def test_serve_counts_and_keeps_counts_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as first:
        assert [_post_hit(port, n) for n in range(5)] == [204] * 5
        assert http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        before = _totals(port)
        assert before["total"]["pageviews"] == 5
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        output = first.stdout.read() if first.stdout else ""
    assert f"http://127.0.0.1:{port}" in output
    assert "/api/v1/sites/demo/counters" in output
    assert (tmp_path / "data" / "appendonly.aof").is_file()
    assert not (tmp_path / "data" / "redis.sock").exists()

    with serving(tmp_path, port):
        assert _totals(port) == before
        _post_hit(port, 99)
        assert _totals(port)["total"]["pageviews"] == 6


def test_a_bad_setting_stops_the_start_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYTICS, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=service_env(tmp_path / "data", ANALYTICS_TRUSTED_PROXIES="two"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ANALYTICS_TRUSTED_PROXIES" in result.stderr
    assert "whole number" in result.stderr


def test_ctrl_c_in_a_terminal_stops_the_service_before_its_redis(tmp_path: Path) -> None:
    """Ctrl-C signals the whole foreground process group; Redis must not go first."""
    port = free_port()
    with serving(tmp_path, port) as process:
        _post_hit(port, 1)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
    log = (tmp_path / "data" / "redis.log").read_text()
    assert "Received SIGINT" not in log
    assert "Received SIGTERM" in log  # from the service, after its workers finished
    with serving(tmp_path, port):
        assert _totals(port)["total"]["pageviews"] == 1


def test_behind_a_trusted_proxy_the_forwarded_address_names_the_visitor(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port, ANALYTICS_TRUSTED_PROXIES="1"):
        for n, address in enumerate(("198.51.100.1", "198.51.100.2", "198.51.100.3")):
            _post_hit(port, n, {"X-Forwarded-For": address})
        assert _totals(port)["today"]["visitors"] == 3


def test_serve_runs_the_housekeeping_scheduler(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port):

        def ran() -> bool:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            return status == 200 and all(
                f'analytics_scheduler_last_success_timestamp_seconds{{task="{job}"}}'
                in body.decode()
                for job in ("close_periods", "trim_online", "delete_salts")
            )

        wait_for(ran, "the first housekeeping runs")


@contextmanager
def running_scheduler(tmp_path: Path, redis_url: str) -> Iterator[subprocess.Popen[str]]:
    """`analytics scheduler` on ``redis_url``, its banner on stdout; killed if still running."""
    process = subprocess.Popen(
        [ANALYTICS, "scheduler"],
        cwd=tmp_path,
        env=service_env(tmp_path / "data", ANALYTICS_REDIS_URL=redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_the_scheduler_command_runs_alone_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    build_services(Settings(redis_url=redis_url), registry=CollectorRegistry())  # the web side
    with running_scheduler(tmp_path, redis_url) as process:
        # On start it catches up: the 62 days before today are closed for the demo site.
        # The day the service sees as today: it closes a day only 5 minutes after it ends.
        grace = timedelta(seconds=Settings().close_grace_seconds)
        today = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) - grace).date()
        first, last = today - timedelta(days=62), today - timedelta(days=1)

        def caught_up() -> bool:
            closed = redis_client.hgetall("va:{demo}:closed")
            return (
                closed.get(b"d:since") == first.isoformat().encode()
                and closed.get(b"d") == last.isoformat().encode()
            )

        wait_for(caught_up, "catch-up")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


@pytest.mark.parametrize("command", ["scheduler", "web"])
def test_the_scheduler_and_the_web_tier_alone_need_a_redis(tmp_path: Path, command: str) -> None:
    result = subprocess.run(
        [ANALYTICS, command],
        cwd=tmp_path,
        env=service_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ANALYTICS_REDIS_URL" in result.stderr
    assert not (tmp_path / "data" / "analytics.lock").exists()  # it took no data directory


def scraped(port: int, series: str) -> float | None:
    """The value of one series (name and labels as exposed) in a scrape of /metrics."""
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


COUNTED = 'analytics_hits_total{outcome="counted"}'
CLOSED = 'analytics_scheduler_last_success_timestamp_seconds{task="close_periods"}'


def test_two_workers_answer_one_count_and_their_metrics_are_summed(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port, "--workers", "2") as server:
        wait_for(lambda: len(worker_pids(server)) == 2, "two workers")
        # The scheduler's first run catches up in the background: waited for, not assumed.
        wait_for(lambda: (scraped(port, CLOSED) or 0) > 0, "the first close_periods run")
        first = worker_pids(server)
        assert [_post_hit(port, n) for n in range(40)] == [204] * 40  # a connection each
        # Every scrape, whichever worker answers it, sums both workers and the scheduler.
        for _ in range(10):
            assert scraped(port, COUNTED) == 40
            assert (scraped(port, CLOSED) or 0) > 0  # the scheduler, in the server itself
        redis_socket = tmp_path / "data" / "redis.sock"
        client = redis.Redis(unix_socket_path=str(redis_socket))
        names = {c["name"] for c in client.client_list() if c["name"].startswith("visit-")}
        assert {f"visit-analytics-{pid}" for pid in first} <= names  # both served hits
        # A worker killed is started again; what it counted stays in the sums.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server),
            "the worker started again",
        )
        assert [_post_hit(port, n) for n in range(40, 50)] == [204] * 10
        for _ in range(10):
            assert scraped(port, COUNTED) == 50
        assert _totals(port)["total"]["pageviews"] == 50
        client.close()


def worker_pids_left(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie that nobody reaps has ended)."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def test_workers_end_with_their_server_however_it_ends(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port, "--workers", "2") as server:
        wait_for(lambda: len(worker_pids(server)) == 2, "two workers")
        workers = worker_pids(server)
        server.kill()  # SIGKILL: no stop of its own
        server.wait(10)
        wait_for(lambda: not worker_pids_left(workers), "the workers to end")


def test_the_workers_default_to_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as server:
        wait_for(lambda: len(worker_pids(server)) == usable_cpus(), "the default workers")


def test_the_web_tier_alone_serves_without_a_scheduler(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """On an emptied Redis (``redis_client``): no reload guard left by an earlier test."""
    port = free_port()
    process = subprocess.Popen(
        [ANALYTICS, "web", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        env=service_env(tmp_path / "data", ANALYTICS_REDIS_URL=redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "web")
        assert _post_hit(port, 1) == 204
        assert scraped(port, COUNTED) == 1
        assert scraped(port, CLOSED) is None  # no scheduler in the web tier
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.stdout is not None
        output = process.stdout.read()
        process.stdout.close()
    assert "web tier on http://127.0.0.1:" in output
    assert "housekeeping" not in output


def test_beacons_share_a_kept_alive_connection(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port, "--workers", "1"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            sockets = set()
            for n in range(5):
                body = json.dumps({"site": "demo", "url": f"https://example.vn/{n}"})
                connection.request(
                    "POST",
                    "/api/v1/hit",
                    body=body,
                    headers={"Content-Type": "text/plain", "User-Agent": BROWSER_UA},
                )
                response = connection.getresponse()
                assert response.status == 204 and response.read() == b""
                assert response.getheader("Connection", "").lower() != "close"
                sockets.add(id(connection.sock))
            assert len(sockets) == 1  # one connection carried all five
        finally:
            connection.close()
        assert _totals(port)["total"]["pageviews"] == 5


def test_the_scheduler_stops_once_however_many_signals_it_gets(tmp_path: Path) -> None:
    with running_scheduler(tmp_path, "redis://127.0.0.1:1/0") as process:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("visit-analytics scheduler running")
        for _ in range(5):  # a second signal while the first is handled must not hang it
            process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def visitor(t: int, n: int) -> dict[str, str]:
    """A new visitor (behind the trusted proxy) for the ``n``-th beacon of thread ``t``: no
    rate limit or reload guard holds any of them back."""
    return {"X-Forwarded-For": f"10.{t}.{n // 256 % 256}.{n % 256}"}


def redis_state(pid: int) -> str | None:
    """The state letter of ``pid`` (Z for a zombie nobody reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class Beacons:
    """Beacons sent from several threads until stopped; how many were answered 204."""

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.answered = 0
        self.failed: list[object] = []
        """What was not a 204: a status, or the error of a request."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(t,), daemon=True) for t in range(threads)
        ]

    def _send(self, t: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                status = _post_hit(self.port, n, visitor(t, n))
            except urllib.error.HTTPError as err:
                with self._lock:
                    self.failed.append(f"{err.code} {err.read()[:300]!r}")
                continue
            except (urllib.error.URLError, OSError) as err:
                with self._lock:
                    self.failed.append(repr(err))
                continue
            with self._lock:
                if status == 204:
                    self.answered += 1
                else:
                    self.failed.append(status)

    def __enter__(self) -> Beacons:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def test_a_killed_embedded_redis_is_started_again_under_load(tmp_path: Path) -> None:
    port = free_port()
    pid_file = tmp_path / "data" / "redis.pid"
    with serving(tmp_path, port, "--workers", "2", ANALYTICS_TRUSTED_PROXIES="1") as server:
        with Beacons(port, threads=4) as beacons:
            wait_for(lambda: beacons.answered >= 40, "beacons counted")
            first = int(pid_file.read_text())
            answered_before_kill = beacons.answered
            os.kill(first, signal.SIGKILL)
            wait_for(
                lambda: (
                    http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200
                    and int(pid_file.read_text()) != first
                ),
                "ready again",
                seconds=10,
            )
            assert redis_state(first) is None  # reaped by `analytics serve`, no zombie
            # The beacons go on being counted, from every thread, on the same URL.
            resumed = beacons.answered
            wait_for(lambda: beacons.answered >= resumed + 40, "counting to resume")
        # Every beacon was answered 204, those of the gap kept in the spool; each is counted
        # once: before the kill, Redis read them back from its AOF; in the gap, from the spool.
        if beacons.failed:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            said = server.stdout.read() if server.stdout else ""
            raise AssertionError(f"not answered 204: {beacons.failed[:5]}\n{said[-6000:]}")
        assert answered_before_kill < resumed
        wait_for(
            lambda: _totals(port)["total"]["pageviews"] == beacons.answered,
            "every beacon answered to be counted",
        )
        assert [_post_hit(port, n, visitor(9, n)) for n in range(10)] == [204] * 10
        assert _totals(port)["total"]["pageviews"] == beacons.answered + 10
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        output = server.stdout.read() if server.stdout else ""
    second = int(pid_file.read_text()) if pid_file.exists() else None
    assert [line for line in output.splitlines() if "embedded Redis (pid" in line] == [
        line for line in output.splitlines() if f"(pid {first}) killed by SIGKILL" in line
    ]
    assert f"(pid {first}) killed by SIGKILL" in output
    assert second is None or redis_state(second) is None  # stopped with the service
