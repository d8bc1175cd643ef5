"""Chromium against the real service: the service on one origin, the host pages on another."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from playwright.sync_api import Browser, Playwright, sync_playwright
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.cli import build_server
from analytics.clock import FixedClock
from analytics.settings import Settings
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, Browsing, HostPages, Service


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
    )
    yield launched
    launched.close()


@pytest.fixture
def service_settings(settings: Settings) -> Settings:
    """The settings the service starts with; a test module overrides this to change them."""
    return settings


@pytest.fixture
def service(
    service_settings: Settings, redis_client: redis.Redis, clock: FixedClock
) -> Iterator[Service]:
    registry = CollectorRegistry()
    app = create_app(service_settings, clock=clock, registry=registry)
    server = build_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, name="service", daemon=True)
    thread.start()
    yield Service(f"http://127.0.0.1:{server.effective_port}", app, clock, registry)
    server.close()
    server.task_dispatcher.shutdown(timeout=5)
    thread.join(5)


@pytest.fixture
def host() -> Iterator[HostPages]:
    pages = HostPages()
    yield pages
    pages.close()


@pytest.fixture
def browsing(browser: Browser, service: Service) -> Iterator[Browsing]:
    """Depends on the service so that the pages are closed before the service stops."""
    session = Browsing(browser)
    yield session
    session.close()
