"""Fixtures shared by every test: a real redis-server for the session, a fixed clock, the app."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.embedded import free_port, redis_server_binary
from analytics.services import Services
from analytics.settings import Settings

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# 2026-11-26 22:01:05 in Asia/Ho_Chi_Minh, the example instant of API.md.
EXAMPLE_INSTANT = datetime(2026, 11, 26, 15, 1, 5, tzinfo=UTC)


def wait_for(ready: Callable[[], object], what: str, *, seconds: float = 30) -> None:
    """Polls ``ready`` until it is true: for a process a test started to come up.

    The only waiting the tests do; time itself moves by the injected clock. ``ready`` may
    raise AssertionError or RuntimeError to give up early (a process that died).
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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server (the binary the embedded mode runs) on a free loopback port."""
    workdir = Path(tempfile.mkdtemp(prefix="analytics-test-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the test redis-server exited at start")
        return bool(client.ping())

    try:
        wait_for(ready, "the test redis-server", seconds=20)
    except BaseException:
        process.kill()
        raise
    client.close()
    yield url
    process.terminate()
    process.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(EXAMPLE_INSTANT)


@pytest.fixture
def settings(redis_url: str) -> Settings:
    """Settings of a test app: no read or site caching, so every read sees the last hit."""
    return Settings(redis_url=redis_url, read_cache_seconds=0, site_cache_seconds=0)


@pytest.fixture
def app(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Flask:
    return create_app(settings, clock=clock, registry=CollectorRegistry())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def services(app: Flask) -> Services:
    found: Services = app.extensions["analytics"]
    return found


def hit(
    client: FlaskClient,
    site: str = "demo",
    url: str = "https://example.vn/",
    *,
    kind: str | None = None,
    ua: str = BROWSER_UA,
    ip: str = "203.0.113.7",
    headers: dict[str, str] | None = None,
) -> int:
    """Sends one beacon as a browser's sendBeacon would; returns the status code."""
    body: dict[str, Any] = {"site": site, "url": url}
    if kind is not None:
        body["type"] = kind
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
