"""Helpers for the tests: a browser's user agent, the example instant, waiting for a process
to come up, and sending a beacon or reading the counters as a browser would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from flask.testing import FlaskClient

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
# 2026-11-26 22:01:05 in Asia/Ho_Chi_Minh, the example instant of docs/api.md.
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
