"""Helpers of the browser tests: Chromium's flags, the running service, host pages on another
origin, and waiting for what a page shows."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page, Request
from playwright.sync_api import Error as PlaywrightError
from prometheus_client import CollectorRegistry

from analytics.clock import FixedClock
from analytics.services import Services
from tests.helpers import BROWSER_UA

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
)
"""The mark of every browser test module (``pytestmark = NEEDS_CHROMIUM``)."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Where browser tests leave their screenshots (ignored by git)."""


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


WAIT_SECONDS = 15.0


"""The longest any single thing may take to appear; every wait in the module is bounded."""


SHADOW_BOXES = """() => [...document.querySelectorAll('*')]
  .filter(e => e.shadowRoot && e.shadowRoot.querySelector('.b'))
  .map(e => {
    const b = e.shadowRoot.querySelector('.b');
    return {
      host: e.id || e.tagName.toLowerCase(),
      role: b.getAttribute('role'),
      label: b.getAttribute('aria-label'),
      lang: b.lang,
      title: b.querySelector('.h').textContent,
      rows: [...b.querySelectorAll('.r')].map(
        r => [r.querySelector('dt').textContent, r.querySelector('dd').textContent]),
    };
  })"""


@dataclass
class Service:
    """The real service (waitress, the app, Redis) on a free loopback port, on a fixed clock."""

    url: str
    app: Flask
    clock: FixedClock
    registry: CollectorRegistry

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions["analytics"]
        return found

    def hits(self, outcome: str) -> int:
        value = self.registry.get_sample_value("analytics_hits_total", {"outcome": outcome})
        return int(value or 0)

    def counters(self, site: str = "demo") -> dict[str, Any]:
        response = self.app.test_client().get(f"/api/v1/sites/{site}/counters")
        assert response.status_code == 200
        doc: dict[str, Any] = response.get_json()
        return doc

    def pageviews(self, window: str = "today") -> int:
        return int(self.counters()["windows"][window]["pageviews"])

    def seed_offsets(self, value: int) -> None:
        """Big totals without the admin API: the offsets every metric's total starts from."""
        self.services.sites.upsert(
            {"id": "demo", "offsets": {"pageviews": value, "visits": value, "visitors": value}}
        )


def script_tag(origin: str, **data: str) -> str:
    """The README's embed snippet, with extra ``data-*`` attributes (underscores for dashes)."""
    attributes = {"site": "demo", **data}
    text = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in attributes.items())
    return f'<script async src="{origin}/widget.js"{text}></script>'


def host_page(body: str, *, head: str = "") -> str:
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        f"<title>Trang chủ</title>{head}</head><body><h1>Cổng thông tin</h1>"
        f'<main id="content">{body}</main></body></html>'
    )


class HostPages:
    """A second, unrelated web server for the pages that embed the widget, as a real site is."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, dict[str, str]]] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = pages.get(self.path.split("?")[0])
                if page is None:
                    # No favicon either, without the console error of a 404.
                    self.send_response(204 if self.path == "/favicon.ico" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = page[0].encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in page[1].items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Another origin than the service's 127.0.0.1, as a real site is.
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        self.pages[path] = (html, headers or {})
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Browsing:
    """Browser contexts of one test, each a different reader, with what their pages reported."""

    browser: Browser
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def open(self, url: str | None = None, *, user_agent: str = BROWSER_UA, **options: Any) -> Page:
        context = self.browser.new_context(user_agent=user_agent, **options)
        context.set_default_timeout(WAIT_SECONDS * 1000)
        context.set_default_navigation_timeout(WAIT_SECONDS * 1000)
        context.on("request", lambda request: self.requests.append(request))
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", self._console)
        self.pages.append(page)
        if url is not None:
            page.goto(url)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} at {message.location}")

    def hits(self, service: Service, kind: str | None = None) -> list[dict[str, Any]]:
        """The bodies of the beacons the pages sent to ``service``, of one kind or all."""
        bodies = [
            json.loads(r.post_data or "{}")
            for r in self.requests
            if r.url == f"{service.url}/api/v1/hit" and r.method == "POST"
        ]
        return [b for b in bodies if kind is None or b.get("type") == kind]

    def close(self) -> None:
        for page in self.pages:
            with contextlib.suppress(PlaywrightError):  # closed by the test already
                page.context.close()


def boxes(page: Page) -> list[dict[str, Any]]:
    """Every widget box on the page, read inside its shadow root."""
    found: list[dict[str, Any]] = page.evaluate(SHADOW_BOXES)
    return found


def wait_until(
    page: Page, check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Polls ``check`` while the page's events keep being dispatched; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        page.wait_for_timeout(25)


def wait_for_rows(
    page: Page, expected: list[list[tuple[str, str]]], timeout: float = WAIT_SECONDS
) -> list[dict[str, Any]]:
    """Waits until the page's boxes show exactly ``expected`` (one list of rows per box)."""
    seen: list[dict[str, Any]] = []

    def shown() -> bool:
        nonlocal seen
        seen = boxes(page)
        return [[tuple(row) for row in box["rows"]] for box in seen] == expected

    try:
        wait_until(page, shown, "the boxes", timeout)
    except AssertionError:
        raise AssertionError(f"the boxes show {seen}, not {expected}") from None
    return seen
