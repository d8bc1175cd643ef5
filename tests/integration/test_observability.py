"""What operators see: /metrics (its token, the per-site gauges and their cap, Redis latency),
request ids, and JSON log lines that carry no client address or user agent."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import analytics.metrics
import analytics.store
from analytics import create_app
from analytics.clock import FixedClock
from analytics.embedded import EmbeddedRedis
from analytics.logs import JsonFormatter
from analytics.services import Services
from analytics.settings import Settings
from analytics.store import OPERATIONS
from tests.helpers import BROWSER_UA, app_on, hit

METRICS_TOKEN = "metrics-token-for-tests"


def samples(
    client: FlaskClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def make_app(settings: Settings, clock: FixedClock, **changes: object) -> Flask:
    return create_app(settings.replace(**changes), clock=clock, registry=CollectorRegistry())


def test_metrics_token_when_set(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    client = make_app(settings, clock, metrics_token=METRICS_TOKEN).test_client()
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-wrong"},
        {"Authorization": METRICS_TOKEN},
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "analytics_" not in response.get_data(as_text=True)
    assert samples(client, Authorization=f"Bearer {METRICS_TOKEN}")
    assert client.get("/healthz").status_code == 200  # probes need no token


def test_per_site_gauges_are_read_at_scrape_time_and_capped(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    client = make_app(settings, clock, metrics_max_sites=2, metrics_site_gauges=True).test_client()
    services: Services = client.application.extensions["analytics"]
    for site in ("a-site", "b-site", "c-site"):
        services.sites.upsert({"id": site})
    hit(client, "b-site")
    hit(client, "b-site", "https://example.vn/2")
    found = samples(client)
    assert found[("analytics_store_up", ())] == 1
    assert found[("analytics_sites_registered", ())] == 4  # with demo
    online = {dict(k[1])["site"] for k in found if k[0] == "analytics_site_online"}
    assert online == {"a-site", "b-site"}  # the first two by id
    assert found[("analytics_site_pageviews_today", (("site", "b-site"),))] == 2
    assert found[("analytics_site_visits_today", (("site", "b-site"),))] == 1
    assert found[("analytics_site_online", (("site", "b-site"),))] == 1
    record_hit = (("le", "+Inf"), ("operation", "record_hit"))
    assert found[("analytics_redis_duration_seconds_bucket", record_hit)] == 2


def test_gauges_off_with_a_cap_of_zero(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    client = make_app(settings, clock, metrics_max_sites=0, metrics_site_gauges=True).test_client()
    assert not [k for k in samples(client) if k[0].startswith("analytics_site_")]


@pytest.mark.parametrize(
    ("token", "site_gauges", "listed"),
    [
        (None, None, False),  # the default: /metrics open, and no site in it
        (METRICS_TOKEN, None, True),  # behind its token, the gauges come with it
        (METRICS_TOKEN, False, False),
        (None, True, True),  # turned on explicitly, for a /metrics kept off the public network
        (None, False, False),
    ],
    ids=["open-default", "token", "token-turned-off", "open-turned-on", "open-turned-off"],
)
def test_per_site_gauges_only_behind_a_token_or_when_turned_on(
    settings: Settings,
    clock: FixedClock,
    redis_client: redis.Redis,
    token: str | None,
    site_gauges: bool | None,
    listed: bool,
) -> None:
    app = make_app(settings, clock, metrics_token=token, metrics_site_gauges=site_gauges)
    client = app.test_client()
    services: Services = app.extensions["analytics"]
    services.sites.upsert({"id": "private-shop"})
    assert hit(client, "private-shop") == 204
    assert hit(client, "demo") == 204
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    found = samples(client, **headers)
    assert found[("analytics_sites_registered", ())] == 2
    if listed:
        assert found[("analytics_site_pageviews_today", (("site", "private-shop"),))] == 1
        assert found[("analytics_site_online", (("site", "demo"),))] == 1
    else:
        assert "private-shop" not in text and 'site="' not in text, text
        assert "analytics_site_" not in text  # not even the families' HELP lines


def test_request_ids_are_echoed_or_made(client: FlaskClient) -> None:
    given = client.get("/healthz", headers={"X-Request-Id": "edge-1234abcd"})
    assert given.headers["X-Request-Id"] == "edge-1234abcd"
    made = client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert made.headers["X-Request-Id"] != "<script>" and len(made.headers["X-Request-Id"]) == 32
    assert client.get("/healthz").headers["X-Request-Id"] != made.headers["X-Request-Id"]


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """Log lines of the service, formatted as in production, captured for the test."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_admin_actions_and_redis_errors_are_json_lines_without_addresses(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis, json_lines: list[str]
) -> None:
    token = "admin-token-for-the-log-test"
    client = make_app(settings, clock, admin_token=token).test_client()
    response = client.patch(
        "/api/v1/admin/sites/demo",
        json={"name": "Tin tức"},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-admin-0001"},
        environ_base={"REMOTE_ADDR": "198.51.100.77"},
    )
    assert response.status_code == 200
    entries = [json.loads(line) for line in json_lines]
    admin = [e for e in entries if e["event"] == "admin_action"]
    assert admin == [
        {
            "time": admin[0]["time"],
            "level": "info",
            "logger": "analytics.admin",
            "event": "admin_action",
            "message": "admin site_updated on demo",
            "request_id": "req-admin-0001",
            "action": "site_updated",
            "site": "demo",
        }
    ]

    text = "\n".join(json_lines)
    assert "198.51.100" not in text


def test_redis_errors_are_json_lines_and_the_scrape_says_redis_is_down(
    tmp_path: Path, clock: FixedClock, json_lines: list[str]
) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    server.start()
    try:
        client = app_on(server.url, tmp_path / "app", clock).test_client()
        assert hit(client) == 204
        assert samples(client)[("analytics_store_up", ())] == 1
    finally:
        server.stop()
    status = client.post(
        "/api/v1/hit",
        data='{"site": "demo", "url": "https://example.vn/"}',
        content_type="text/plain",
        headers={"User-Agent": BROWSER_UA, "X-Request-Id": "req-down-0001"},
        environ_base={"REMOTE_ADDR": "198.51.100.78"},
    ).status_code
    assert status == 204  # kept in the spool
    errors = [json.loads(line) for line in json_lines if '"redis_error"' in line]
    assert errors[0]["operation"] == "load_site" and errors[0]["error"] == "ConnectionError"
    assert errors[0]["level"] == "warning" and errors[0]["request_id"] == "req-down-0001"
    found = samples(client)
    assert found[("analytics_store_up", ())] == 0
    assert not [k for k in found if k[0].startswith("analytics_site_")]
    assert found[("analytics_redis_errors_total", (("operation", "load_site"),))] >= 1
    assert found[("analytics_hits_total", (("outcome", "spooled"),))] == 1
    assert found[("analytics_spool_depth", ())] == 1
    text = "\n".join(json_lines)
    assert "198.51.100" not in text and "Mozilla" not in text


def test_every_store_operation_has_an_error_series_from_the_start(client: FlaskClient) -> None:
    """A first failure must show as an increase, so every operation's series starts at 0;
    and the list of operations is every name the store times and reports."""
    package = Path(analytics.store.__file__).parent
    source = "".join(path.read_text(encoding="utf-8") for path in package.glob("*.py"))
    named = set(re.findall(r'\.call\("([a-z_]+)"\)', source)) | {"ping"}
    assert named == set(OPERATIONS)
    found = samples(client)
    for operation in OPERATIONS:
        assert found[("analytics_redis_errors_total", (("operation", operation),))] == 0


def test_a_slow_scrape_stops_reading_sites_and_says_how_many_it_left_out(
    settings: Settings,
    clock: FixedClock,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_app(settings, clock, metrics_site_gauges=True).test_client()
    services: Services = client.application.extensions["analytics"]
    for site in ("a-site", "b-site"):
        services.sites.upsert({"id": site})
    monkeypatch.setattr(analytics.metrics, "SCRAPE_BUDGET_SECONDS", -1.0)  # already spent
    found = samples(client)
    assert found[("analytics_sites_skipped", ())] == 3
    assert not [k for k in found if k[0] == "analytics_site_online"]
    assert found[("analytics_store_up", ())] == 1


def test_one_process_commands_ignore_a_multiprocess_directory(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """PROMETHEUS_MULTIPROC_DIR meant for a gunicorn on the host neither stops a command
    (here a directory that does not exist) nor gets its metric files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.update(
        ANALYTICS_REDIS_URL=str(settings.redis_url),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing"),
    )
    analytics_command = str(Path(sys.executable).parent / "analytics")
    result = subprocess.run(
        [analytics_command, "sites", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "missing").exists()
