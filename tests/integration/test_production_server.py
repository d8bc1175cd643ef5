"""The production web tier: `analytics web` as deployed, two workers, one real Redis.

Hits land on both workers; /metrics, answered by either, reports the exact total of all; a
worker killed and started again takes nothing off the counters.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from analytics.embedded import free_port
from analytics.settings import Settings
from tests.helpers import (
    ANALYTICS,
    BROWSER_UA,
    clear_of_day_change,
    hit,
    stop_gracefully,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.slow

HIT_COMMANDS = ("evalsha", "eval")
"""The last command of a worker's Redis connection once it has counted a hit."""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    tmp: Path
    redis: redis.Redis

    def workers(self) -> set[int]:
        """The server's live worker processes."""
        return worker_pids(self.process)

    def connected(self) -> set[int]:
        """The workers with a Redis connection (each makes one once its app is built)."""
        return {
            int(c["name"].rpartition("-")[2])
            for c in self.redis.client_list()
            if c["name"].startswith("visit-analytics-")
        }

    def counting(self) -> set[int]:
        """The workers whose Redis connection (named by CLIENT LIST) last counted a hit."""
        return {
            int(c["name"].rpartition("-")[2])
            for c in self.redis.client_list()
            if c["name"].startswith("visit-analytics-") and c["cmd"] in HIT_COMMANDS
        }

    def log_entries(self) -> list[dict[str, Any]]:
        """The log, every line JSON but the one the command prints for people."""
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if not line.startswith("visit-analytics web ")]

    def hit_until_counted_by(self, workers: set[int], sent: int) -> int:
        """Hits, each on a fresh connection, until every one of ``workers`` has counted one
        (which worker takes a connection is the kernel's choice, and one still starting
        takes none); the number of hits sent in all, ``sent`` before these included."""
        served: set[int] = set()
        count = sent

        def one() -> bool:
            nonlocal count
            assert self.hit(count) == 204
            count += 1
            served.update(self.counting())
            return workers <= served

        wait_for(one, f"hits counted by the workers {sorted(workers)}")
        return count

    def metrics_dirs(self) -> list[Path]:
        """The metrics directories of the servers started with this test's TMPDIR."""
        return sorted(self.tmp.glob("analytics-metrics-*"))

    def hit(self, n: int) -> int:
        body = f'{{"site":"demo","url":"https://example.vn/page-{n}"}}'.encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1/hit",
            data=body,
            headers={"User-Agent": BROWSER_UA, "Content-Type": "text/plain", "Connection": "close"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    def scrape(self) -> str:
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as response:
            return str(response.read().decode())

    def metric(self, sample: str) -> float:
        for line in self.scrape().splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{sample} not in /metrics")


@contextmanager
def web(
    settings: Settings, tmp_path: Path, *, workers: int, name: str = "web", **env: str
) -> Iterator[Server]:
    """`analytics web` as compose runs it (workers from ANALYTICS_WORKERS), on the test Redis,
    its temporary files under ``tmp_path``; stopped with SIGTERM, exit 0."""
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    environ.update(
        ANALYTICS_REDIS_URL=str(settings.redis_url),
        ANALYTICS_WORKERS=str(workers),
        TMPDIR=str(tmp),
        **env,
    )
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [ANALYTICS, "web", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis.from_url(str(settings.redis_url), decode_responses=True)
    running = Server(process, f"http://127.0.0.1:{port}", log, tmp, client)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{running.base}/readyz", timeout=1):
                current = running.workers()
                return len(current) == workers and current <= running.connected()
        except (urllib.error.URLError, OSError):
            assert process.poll() is None, log.read_text()
            return False

    try:
        wait_for(ready, f"analytics web with {workers} workers")
        yield running
    finally:
        client.close()
        stop_gracefully(process, log)


@pytest.fixture
def server(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Server]:
    clear_of_day_change()  # the server reads the real clock; its "today" is checked
    # No read cache, so that the counters read straight after a hit include it; every hit is
    # one visitor's, counted however many it takes to reach both workers.
    with web(
        settings,
        tmp_path,
        workers=2,
        ANALYTICS_THREADS="4",
        ANALYTICS_ACCESS_LOG="true",
        ANALYTICS_READ_CACHE_SECONDS="0",
        ANALYTICS_METRICS_SITE_GAUGES="true",
        ANALYTICS_LIMIT_NEW_VISITORS="10000000",
        ANALYTICS_LIMIT_VISITS="10000000",
        ANALYTICS_LIMIT_PAGEVIEWS="10000000",
    ) as running:
        yield running


def test_metrics_add_up_every_worker_and_survive_a_worker_restart(server: Server) -> None:
    sent = server.hit_until_counted_by(server.workers(), 0)
    for _ in range(20):
        assert server.hit(sent) == 204
        sent += 1
    counted = 'analytics_hits_total{outcome="counted"}'
    requests = 'analytics_http_requests_total{method="POST",route="/api/v1/hit",status="204"}'
    for _ in range(10):  # scrapes answered by either worker
        assert server.metric(counted) == sent
        assert server.metric(requests) == sent
    assert server.metric('analytics_site_pageviews_today{site="demo"}') == sent

    # A worker dies (as after a crash) and the server starts another.
    old = server.workers()
    victim = max(old)
    (metrics_dir,) = server.metrics_dirs()
    live_gauges = metrics_dir / f"gauge_livesum_{victim}.db"
    assert live_gauges.exists()  # the spool depth, a gauge that lives and dies with a worker
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.workers() and len(server.workers()) == 2, "a new worker")
    new = server.workers() - old
    wait_for(lambda: new <= server.connected(), "the new worker's app")
    for _ in range(10):  # scrapes answered by either worker
        assert server.metric(counted) == sent
    assert not live_gauges.exists()  # dropped at scrape: its live gauges left with it
    assert (metrics_dir / f"counter_{victim}.db").exists()  # its counts stay in the sums

    sent = server.hit_until_counted_by(new, sent)
    for _ in range(30):
        assert server.hit(sent) == 204
        sent += 1
    for _ in range(10):
        assert server.metric(counted) == sent
        assert server.metric(requests) == sent
    with urllib.request.urlopen(f"{server.base}/api/v1/sites/demo/counters", timeout=10) as r:
        assert json.loads(r.read())["windows"]["total"]["pageviews"] == sent

    # The access log is on here: a JSON line per request, without the client's address.
    entries = server.log_entries()
    access = [e for e in entries if e["logger"] == "granian.access"]
    beacons = [e for e in access if e["message"].startswith('"POST /api/v1/hit HTTP/1.1" 204 ')]
    assert len(beacons) == sent
    assert not [e for e in access if "127.0.0.1" in json.dumps(e)]


def families(text: str) -> set[str]:
    """The metric families of an exposition that have samples; not the ``_created`` series,
    which only a one-process registry has (and no query uses)."""
    return {
        f.name
        for f in text_string_to_metric_families(text)
        if f.samples and not f.name.endswith("_created")
    }


def test_the_workers_scrape_has_every_family_of_a_one_process_scrape(
    server: Server, client: FlaskClient
) -> None:
    """The dashboard and alerts are checked against a one-process scrape
    (test_deploy_config.py); the sum over workers must expose the same families."""
    assert server.hit(1) == 204
    assert hit(client) == 204
    client.get("/api/v1/sites/demo/counters")
    server.hit(2)
    urllib.request.urlopen(f"{server.base}/api/v1/sites/demo/counters", timeout=10).close()
    one_process = families(client.get("/metrics").get_data(as_text=True))
    workers = families(server.scrape())
    assert one_process - workers == set()
    assert "analytics_redis_duration_seconds" in workers and "analytics_site_online" in workers


def test_the_access_log_is_off_by_default_and_logs_are_json(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # More threads than this machine's CPUs keep busy: the start warns, in our format.
    threads = str(min(256, multiprocessing.cpu_count() * 2 + 2))
    with web(settings, tmp_path, workers=1, ANALYTICS_THREADS=threads) as server:
        server.hit(1)
        # A malformed request: a server's warning about it could name the client's address.
        host, _, port = server.base.removeprefix("http://").rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            assert raw.recv(1024).startswith(b"HTTP/1.1 400")
        server.hit(2)  # served after it, so its log line (if any) is written by now
    entries = server.log_entries()
    output = server.log.read_text()
    assert {e["event"] for e in entries} >= {"start", "stop"}
    assert not [e for e in entries if e["logger"] == "granian.access"]
    warned = [e for e in entries if e["logger"] == "analytics" and e["level"] == "warning"]
    assert [e["message"] for e in warned if f"up to {threads} Python threads" in e["message"]]
    text = output.replace(server.base, "")  # its own address, in its start line
    assert "127.0.0.1" not in text and "Mozilla" not in text


def test_each_server_has_a_metrics_directory_of_its_own(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # One set for another server on this host is neither used nor emptied.
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"x")
    with ExitStack() as stack:
        first = stack.enter_context(
            web(settings, tmp_path, workers=1, name="first", PROMETHEUS_MULTIPROC_DIR=str(given))
        )
        stack.enter_context(web(settings, tmp_path, workers=1, name="second"))
        dirs = first.metrics_dirs()
        assert len(dirs) == 2  # two servers on one host
        assert all(any(d.glob("*.db")) for d in dirs)
        first.hit(1)
        assert first.metric('analytics_hits_total{outcome="counted"}') == 1
    assert not first.metrics_dirs()  # each went with its server
    assert sorted(p.name for p in given.iterdir()) == ["counter_123.db"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANALYTICS_THREADS": "0"}, "ANALYTICS_THREADS: must be between 1 and 256, got 0"),
        (
            {"ANALYTICS_SERVE_THREADS": "4"},
            "ANALYTICS_SERVE_THREADS: renamed: use ANALYTICS_THREADS instead",
        ),
        (
            {"ANALYTICS_BIND": "0.0.0.0:8000"},
            "ANALYTICS_BIND: removed: give the address as `--host` and `--port` of "
            "`analytics web` or `analytics serve`",
        ),
    ],
)
def test_the_web_tier_does_not_start_on_a_bad_setting(
    env: dict[str, str], message: str, tmp_path: Path, redis_url: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    environ.update(env, ANALYTICS_REDIS_URL=redis_url, TMPDIR=str(tmp_path))
    result = subprocess.run(
        [ANALYTICS, "web", "--port", str(free_port())],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"analytics: {message}"
    assert not list(tmp_path.glob("analytics-metrics-*"))


def test_a_query_string_sent_unencoded_reads_like_an_encoded_one(server: Server) -> None:
    # Clients may send UTF-8 in the request line unencoded; the server must not fail on it.
    url = "https://example.vn/tin-t%E1%BB%A9c/2"
    body = json.dumps({"site": "demo", "url": url}).encode()
    request = urllib.request.Request(
        f"{server.base}/api/v1/hit",
        data=body,
        headers={"Content-Type": "text/plain", "User-Agent": BROWSER_UA},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    host, port = server.base.removeprefix("http://").split(":")
    answers = []
    for target in ("/tin-t%E1%BB%A9c/2", "/tin-tức/2"):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(
                b"GET /api/v1/sites/demo/page?path="
                + target.encode()
                + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            raw = b""
            while chunk := conn.recv(65536):
                raw += chunk
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw
        answers.append(json.loads(payload))
    assert answers[0] == answers[1]
    assert answers[0]["path"] == "/tin-tức/2"
    assert answers[0]["windows"]["total"] == {"pageviews": 1}
