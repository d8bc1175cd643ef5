"""Fixtures shared by every test: a real redis-server for the session, a fixed clock, the app."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.embedded import EmbeddedRedis, free_port, redis_server_binary
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import EXAMPLE_INSTANT, TOKEN, wait_for


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
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own (the embedded one), to stop, start and starve at will;
    stopped at the end of the test."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


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
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """Settings of a test app: no read or site caching, so every read sees the last hit; the
    spool in the test's own directory."""
    return Settings(
        redis_url=redis_url, data_dir=tmp_path, read_cache_seconds=0, site_cache_seconds=0
    )


@pytest.fixture
def app(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Flask:
    return create_app(settings, clock=clock, registry=CollectorRegistry())


@pytest.fixture
def admin_app(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Flask:
    """The app with its admin API on, under the tests' token."""
    return create_app(
        settings.replace(admin_token=TOKEN), clock=clock, registry=CollectorRegistry()
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def services(app: Flask) -> Services:
    found: Services = app.extensions["analytics"]
    return found
