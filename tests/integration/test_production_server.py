"""The production server: gunicorn with config/gunicorn.conf.py, two workers, one real Redis.

Hits land on both workers; /metrics, answered by either, reports the exact total of all; a
worker killed and replaced takes nothing off the counters.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from analytics.embedded import free_port
from analytics.settings import Settings, usable_cpus
from tests.helpers import BROWSER_UA, hit, wait_for

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
PID = re.compile(r"pid=<(\d+)>")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path
    metrics_dir: Path

    def workers(self) -> set[int]:
        """The master's live worker processes."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def served_by(self) -> set[int]:
        """The workers named in the access log so far."""
        return {int(pid) for pid in PID.findall(self.log.read_text())}

    def hit(self, n: int) -> int:
        body = f'{{"site":"demo","url":"https://example.vn/page-{n}"}}'.encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1/hit",
            data=body,
            headers={"User-Agent": BROWSER_UA, "Content-Type": "text/plain", "Connection": "close"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    def metric(self, sample: str) -> float:
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{sample} not in /metrics")


@contextmanager
def gunicorn(settings: Settings, tmp_path: Path, *, workers: int, **env: str) -> Iterator[Server]:
    """The production server as deployed, on the test Redis; stopped with SIGTERM, exit 0."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    environ.update(
        ANALYTICS_REDIS_URL=str(settings.redis_url),
        ANALYTICS_BIND=f"127.0.0.1:{port}",
        ANALYTICS_WORKERS=str(workers),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        **env,
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [GUNICORN, "-c", str(ROOT / "config" / "gunicorn.conf.py"), "analytics.wsgi:app"],
            cwd=tmp_path,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Server(process, f"http://127.0.0.1:{port}", log, tmp_path / "metrics")

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{running.base}/readyz", timeout=1):
                return len(running.workers()) == workers
        except (urllib.error.URLError, OSError):
            assert process.poll() is None, log.read_text()
            return False

    try:
        wait_for(ready, f"gunicorn with {workers} workers")
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture
def server(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Server]:
    # The access log names the worker of each request; no read cache, so that the counters
    # read straight after a hit include it.
    with gunicorn(
        settings,
        tmp_path,
        workers=2,
        ANALYTICS_THREADS="4",
        ANALYTICS_ACCESS_LOG="true",
        ANALYTICS_READ_CACHE_SECONDS="0",
    ) as running:
        yield running


def test_metrics_add_up_every_worker_and_survive_a_worker_restart(server: Server) -> None:
    sent = 0
    # Each hit on a fresh connection; both workers take some within a bounded number.
    while len(server.served_by()) < 2:
        assert sent < 500, "one worker took every request"
        assert server.hit(sent) == 204
        sent += 1
    for _ in range(20):
        assert server.hit(sent) == 204
        sent += 1
    counted = 'analytics_hits_total{outcome="counted"}'
    requests = 'analytics_http_requests_total{method="POST",route="/api/v1/hit",status="204"}'
    assert server.metric(counted) == sent
    assert server.metric(requests) == sent
    assert server.metric('analytics_site_pageviews_today{site="demo"}') == sent

    # A worker dies (as after a crash or a max-requests recycle) and the master replaces it.
    old = server.workers()
    victim = max(old)
    live_gauges = server.metrics_dir / f"gauge_livesum_{victim}.db"
    assert live_gauges.exists()  # the spool depth, a gauge that lives and dies with a worker
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in server.workers() and len(server.workers()) == 2, "a new worker")
    assert not live_gauges.exists()  # child_exit marked it dead: its live gauges left with it
    for _ in range(10):  # scrapes answered by either worker
        assert server.metric(counted) == sent

    for _ in range(30):
        assert server.hit(sent) == 204
        sent += 1
    assert server.metric(counted) == sent
    assert server.metric(requests) == sent
    assert server.served_by() - old, "the new worker served nothing"


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
    with urllib.request.urlopen(f"{server.base}/metrics", timeout=10) as response:
        workers = families(response.read().decode())
    assert one_process - workers == set()
    assert "analytics_redis_duration_seconds" in workers and "analytics_site_online" in workers


def test_the_access_log_is_off_by_default_and_logs_are_json(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with gunicorn(settings, tmp_path, workers=1) as server:
        server.hit(1)
        # A malformed request: gunicorn's warning about it would name the client's address.
        host, _, port = server.base.removeprefix("http://").rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            assert raw.recv(1024).startswith(b"HTTP/1.1 400")
    output = server.log.read_text()
    entries = [json.loads(line) for line in output.splitlines()]
    assert {e["event"] for e in entries} >= {"start", "stop"}
    assert not [e for e in entries if e["logger"] == "gunicorn.access"]
    text = output.replace(f"Listening at: {server.base}", "")  # its own address
    assert "Invalid request from ip=<address>" in text
    assert "127.0.0.1" not in text and "Mozilla" not in text


def load_config(
    monkeypatch: pytest.MonkeyPatch, multiproc_dir: Path | None, **env: str
) -> dict[str, Any]:
    """config/gunicorn.conf.py run as gunicorn runs it, with or without the variable set, and
    with the ANALYTICS_* variables ``env`` (only those)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    if multiproc_dir is not None:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(multiproc_dir))
    for name in [name for name in os.environ if name.startswith("ANALYTICS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {"__file__": str(ROOT / "config" / "gunicorn.conf.py")}
    exec((ROOT / "config" / "gunicorn.conf.py").read_text(encoding="utf-8"), namespace)
    return namespace


class QuietServer:
    class log:
        @staticmethod
        def info(*args: Any, **kwargs: Any) -> None:
            pass


def test_each_server_has_a_metrics_directory_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = load_config(monkeypatch, None)
    second = load_config(monkeypatch, None)
    try:
        assert first["multiproc_dir"] != second["multiproc_dir"]  # two servers on one host
        assert first["multiproc_dir"].is_dir() and first["own_dir"]
    finally:
        for config in (first, second):
            config["on_exit"](QuietServer())
    assert not first["multiproc_dir"].exists()  # its own directory goes with the server

    # A directory given by the operator: only metric files are removed from it, at start.
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"x")
    (given / "notes.txt").write_text("kept")
    config = load_config(monkeypatch, given)
    config["on_starting"](QuietServer())
    config["on_exit"](QuietServer())
    assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]


def test_the_config_takes_workers_threads_bind_and_access_log_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def served(config: dict[str, Any]) -> tuple[object, ...]:
        return (config["workers"], config["threads"], config["bind"], config["accesslog"])

    monkeypatch.chdir(tmp_path)  # no config/analytics.toml here: the built-in defaults
    assert served(load_config(monkeypatch, tmp_path)) == (
        usable_cpus(),
        8,
        ["127.0.0.1:8000"],
        None,
    )
    from_env = load_config(
        monkeypatch,
        tmp_path,
        ANALYTICS_WORKERS="3",
        ANALYTICS_THREADS="5",
        ANALYTICS_BIND="0.0.0.0:9001",
        ANALYTICS_ACCESS_LOG="true",
    )
    assert served(from_env) == (3, 5, ["0.0.0.0:9001"], "-")
    assert from_env["worker_class"] == "gthread"
    config_file = tmp_path / "analytics.toml"
    config_file.write_text('workers = 2\nthreads = 6\nbind = "unix:/tmp/a.sock"\n')
    from_file = load_config(monkeypatch, tmp_path, ANALYTICS_CONFIG=str(config_file))
    assert served(from_file) == (2, 6, ["unix:/tmp/a.sock"], None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ANALYTICS_THREADS": "0"}, "ANALYTICS_THREADS: must be between 1 and 256, got 0"),
        (
            {"ANALYTICS_SERVE_THREADS": "4"},
            "ANALYTICS_SERVE_THREADS: renamed: use ANALYTICS_THREADS instead",
        ),
    ],
)
def test_gunicorn_does_not_start_on_a_bad_setting(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    environ.update(env, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    result = subprocess.run(
        [GUNICORN, "-c", str(ROOT / "config" / "gunicorn.conf.py"), "--check-config", "x:y"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == f"visit-analytics: {message}"


def test_gunicorn_without_the_config_is_warned_about(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Without config/gunicorn.conf.py there is no shared metrics directory: each worker would
    answer /metrics with its own figures, so the app says so when it loads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["ANALYTICS_REDIS_URL"] = str(settings.redis_url)
    loaded = subprocess.run(
        [sys.executable, "-c", "import gunicorn, analytics.wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    warnings = [json.loads(line) for line in loaded.stderr.splitlines()]
    assert [w["event"] for w in warnings] == ["metrics_per_worker"]
