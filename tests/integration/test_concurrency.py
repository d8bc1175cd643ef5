"""Many threads, one real HTTP server, one Redis: every hit is counted exactly once."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.cli import build_server
from analytics.clock import FixedClock
from analytics.settings import Settings
from tests.helpers import BROWSER_UA

THREADS = 8
HITS = 2000


@pytest.fixture
def server(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Iterator[int]:
    app: Flask = create_app(
        settings.replace(trusted_proxies=1), clock=clock, registry=CollectorRegistry()
    )
    srv = build_server(app, host="127.0.0.1", port=0, threads=settings.threads)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield int(srv.effective_port)
    srv.close()
    srv.task_dispatcher.shutdown(timeout=5)
    thread.join(5)


def _send(port: int, numbers: range, failures: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for n in numbers:
            body = json.dumps({"site": "demo", "url": f"https://example.vn/bai-{n}"})
            conn.request(
                "POST",
                "/api/v1/hit",
                body=body,
                headers={
                    "Content-Type": "text/plain;charset=UTF-8",
                    "User-Agent": BROWSER_UA,
                    "X-Forwarded-For": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
                },
            )
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                failures.append(f"hit {n}: {response.status}")
    finally:
        conn.close()


def test_eight_threads_two_thousand_hits_count_exactly(server: int) -> None:
    failures: list[str] = []
    per_thread = HITS // THREADS
    threads = [
        threading.Thread(
            target=_send, args=(server, range(i * per_thread, (i + 1) * per_thread), failures)
        )
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.request("GET", "/api/v1/sites/demo/counters")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    for name in ("today", "this_week", "this_month", "total"):
        window = doc["windows"][name]
        assert window["pageviews"] == HITS, name
        assert window["visits"] == HITS, name  # each hit is a different person
        assert abs(window["visitors"] - HITS) <= HITS * 0.0081 * 3, name  # HyperLogLog error
    assert doc["online"] == HITS
