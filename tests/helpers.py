"""Helpers for the tests: a browser's user agent, the example instant, waiting for a process
to come up, sending a beacon or reading the counters as a browser would, calling the admin API,
and running the `analytics` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import Clock
from analytics.counting import Hit, Kind, Outcome
from analytics.services import Services
from analytics.settings import Settings

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# 2026-11-26 22:01:05 in Asia/Ho_Chi_Minh, the example instant of docs/api.md.
EXAMPLE_INSTANT = datetime(2026, 11, 26, 15, 1, 5, tzinfo=UTC)


def wait_for(ready: Callable[[], object], what: str, *, seconds: float = 30) -> None:
    """Polls ``ready`` until it is true: for a process a test started to come up.

    With clear_of_day_change, the only waiting the tests do; time itself moves by the injected
    clock. ``ready`` may raise AssertionError or RuntimeError to give up early (a process that
    died).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


DAY_ZONES = ("Asia/Ho_Chi_Minh", "Europe/Berlin")
"""The timezones of the tests' sites."""
CLOSE_GRACE = timedelta(seconds=Settings().close_grace_seconds)


def seconds_to_day_change(now: datetime, zone: str, shift: timedelta = timedelta(0)) -> float:
    """How long from ``now`` until the next local midnight of ``zone``, plus ``shift``."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    for day in (local.date() - timedelta(days=1), local.date(), local.date() + timedelta(days=1)):
        boundary = (datetime.combine(day, day_time(), tzinfo=tz) + shift).astimezone(UTC)
        if boundary > now:
            return (boundary - now).total_seconds()
    raise AssertionError("a day ends within two days")  # pragma: no cover


def clear_of_day_change(seconds: float = 120.0) -> None:
    """Returns at once, but within ``seconds`` before a day of the tests' sites begins (or, the
    close grace later, closes): then it waits until it has.

    For a test whose service or command reads the real clock (a subprocess cannot be given the
    injected one) and checks one day's counts, which a day change in its middle would split.
    """
    while True:
        now = datetime.now(UTC)
        left = [
            until
            for zone in DAY_ZONES
            for shift in (timedelta(0), CLOSE_GRACE)
            if (until := seconds_to_day_change(now, zone, shift)) < seconds
        ]
        if not left:
            return
        time.sleep(max(left) + 1)


def hit(
    client: FlaskClient,
    site: str = "demo",
    url: str = "https://example.vn/",
    *,
    kind: str | None = None,
    ua: str = BROWSER_UA,
    ip: str = "203.0.113.7",
    headers: dict[str, str] | None = None,
    referrer: str | None = None,
) -> int:
    """Sends one beacon as a browser's sendBeacon would; returns the status code."""
    body: dict[str, Any] = {"site": site, "url": url}
    if kind is not None:
        body["type"] = kind
    if referrer is not None:
        body["referrer"] = referrer
    response = client.post(
        "/api/v1/hit",
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"User-Agent": ua, **(headers or {})},
        environ_base={"REMOTE_ADDR": ip},
    )
    return response.status_code


def counters(client: FlaskClient, site: str = "demo") -> dict[str, Any]:
    response = client.get(f"/api/v1/sites/{site}/counters")
    assert response.status_code == 200, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def window(client: FlaskClient, name: str, site: str = "demo") -> dict[str, Any]:
    found: dict[str, Any] = counters(client, site)["windows"][name]
    return found


T = TypeVar("T")

ANALYTICS = str(Path(sys.executable).parent / "analytics")


TOKEN = "s3cret-admin-token-for-tests"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.update(ANALYTICS_DATA_DIR=str(data_dir), **extra)
    return env


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def run_cli(
    settings: Settings, *args: str, redis_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env["ANALYTICS_REDIS_URL"] = redis_url or str(settings.redis_url)
    return subprocess.run(
        [ANALYTICS, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok_json(settings: Settings, *args: str) -> Any:
    result = run_cli(settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@contextmanager
def serving(workdir: Path, port: int, *args: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    """`analytics serve` on ``port`` with ``args``, its data in ``workdir``, during the block."""
    process = subprocess.Popen(
        [ANALYTICS, "serve", "--port", str(port), *args],
        cwd=workdir,
        # No read cache, so a read straight after a hit sees it.
        env=service_env(workdir / "data", ANALYTICS_READ_CACHE_SECONDS="0", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as in a terminal
    )

    def ready() -> bool:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"serve exited at start: {output}")
        return http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200

    try:
        wait_for(ready, "analytics serve")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        if process.stdout is not None:
            process.stdout.close()


def call(client: FlaskClient, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
    return client.open(
        path,
        method=method,
        data=None if body is None else json.dumps(body),
        content_type="application/json",
        headers=headers or {},
    )


def audit(client: FlaskClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = call(client, "GET", "/api/v1/admin/audit", headers=AUTH).json[
        "entries"
    ]
    return entries


def from_threads(threads: int, each: int, send: Callable[[int, int], T]) -> list[T]:
    """``send(t, n)`` for n below ``each`` on each of ``threads`` threads at once; what each
    call answered, in the order the calls ended."""
    answers: list[T] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        for n in range(each):
            answer = send(t, n)
            with lock:
                answers.append(answer)

    started = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(120)
    return answers


def count_from_threads(
    services: Services, threads: int, hits: int, site_of: Callable[[int, int], str]
) -> list[Outcome]:
    """Counts ``hits`` pageviews from each of ``threads`` threads at once, the n-th of thread t
    on the site ``site_of(t, n)``, each a new visitor on a new page; returns the outcomes."""

    def count(t: int, n: int) -> Outcome:
        url = f"https://example.vn/{t}/{n}"
        return services.counting.count(
            Hit(site_of(t, n), url, Kind.PAGEVIEW, f"10.{t}.0.{n}", BROWSER_UA)
        )

    return from_threads(threads, hits, count)


def worker_pids(server: subprocess.Popen[Any]) -> set[int]:
    """The web workers of a running `analytics serve` or `analytics web`: its spawned children."""
    try:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    except OSError:
        return set()  # the server is gone
    found = set()
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.add(int(child))
        except OSError:
            continue  # gone meanwhile
    return found


def stop_gracefully(process: subprocess.Popen[Any], log: Path) -> None:
    """SIGTERM, then the process must exit 0 within 30 s (its log says why not); killed if not."""
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def app_on(redis_url: str, data_dir: Path, clock: Clock) -> Flask:
    """An app of its own on ``redis_url`` (one a test may stop or starve), its spool under
    ``data_dir``, no read or site caching, on ``clock``."""
    settings = Settings(
        redis_url=redis_url, data_dir=data_dir, read_cache_seconds=0, site_cache_seconds=0
    )
    return create_app(settings, clock=clock, registry=CollectorRegistry())
