"""Operations: health, readiness, metrics, and how the service behaves when Redis goes away."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.embedded import EmbeddedRedis
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import app_on, counters, hit, wait_for


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_metrics_expose_hits_by_outcome_and_request_latency(
    client: FlaskClient, services: Services
) -> None:
    hit(client)
    hit(client, ua="curl/8.5.0")
    client.get("/api/v1/sites/demo/counters")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'analytics_hits_total{outcome="counted"} 1.0' in text
    assert 'analytics_hits_total{outcome="bot"} 1.0' in text
    assert 'analytics_hits_total{outcome="rate_limited"} 0.0' in text  # every outcome, from 0
    registry = services.metrics.registry
    count = registry.get_sample_value(
        "analytics_http_request_duration_seconds_count", {"route": "/api/v1/hit"}
    )
    assert count == 2
    requests = registry.get_sample_value(
        "analytics_http_requests_total",
        {"route": "/api/v1/sites/<site_id>/counters", "method": "GET", "status": "200"},
    )
    assert requests == 1


def test_route_labels_stay_bounded(client: FlaskClient, services: Services) -> None:
    for n in range(5):
        client.get(f"/no/such/page/{n}")
        client.get(f"/api/v1/sites/site-{n}/counters")
        client.open("/healthz", method=f"X{n}")
    registry = services.metrics.registry
    unmatched = registry.get_sample_value(
        "analytics_http_requests_total", {"route": "unmatched", "method": "GET", "status": "404"}
    )
    assert unmatched == 5
    invented = registry.get_sample_value(
        "analytics_http_requests_total", {"route": "unmatched", "method": "other", "status": "405"}
    )
    assert invented == 5
    labels = {
        s.labels["route"]
        for metric in registry.collect()
        if metric.name == "analytics_http_requests"
        for s in metric.samples
    }
    assert labels == {"unmatched", "/api/v1/sites/<site_id>/counters"}


def test_counters_are_readable_cross_origin(client: FlaskClient) -> None:
    response = client.get("/api/v1/sites/demo/counters")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    missing = client.get("/api/v1/sites/nope/counters")
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == "*"  # the widget can read why
    assert missing.get_json()["error"]["code"] == "unknown_site"
    assert client.get("/api/v1/sites/NOT%20A%20SITE/counters").status_code == 404


def test_the_read_cache_is_at_most_its_age(
    settings: Settings, clock: FixedClock, redis_client: object
) -> None:
    app = create_app(
        settings.replace(read_cache_seconds=1), clock=clock, registry=CollectorRegistry()
    )
    client = app.test_client()
    assert client.get("/api/v1/sites/demo/counters").get_json()["online"] == 0
    hit(client)
    cached = client.get("/api/v1/sites/demo/counters").get_json()
    assert cached["online"] == 0  # served from the cache
    clock.advance(1)
    fresh = client.get("/api/v1/sites/demo/counters").get_json()
    assert fresh["online"] == 1
    assert fresh["windows"]["today"]["pageviews"] == 1


def test_when_redis_goes_away(
    own_redis: EmbeddedRedis, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer retries its spool after a first wait of real time; a longer one keeps a retry
    # (and its second record_hit error) out of the checks below on a slow machine.
    monkeypatch.setattr("analytics.writer.RETRY_SECONDS", (3.0, 5.0))
    app = app_on(own_redis.url, tmp_path / "app", clock)
    client = app.test_client()
    assert hit(client) == 204
    known = client.get("/api/v1/sites/demo/counters").get_json()
    own_redis.stop()

    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    # A site read before keeps answering its last numbers, marked stale; others answer 503.
    stale = client.get("/api/v1/sites/demo/counters")
    assert stale.status_code == 200
    assert stale.get_json() == {**known, "stale": True}
    other = client.get("/api/v1/sites/other/counters")
    assert other.status_code == 503 and other.headers["Retry-After"]
    assert other.get_json()["error"]["code"] == "store_unavailable"
    # A hit is answered, kept in the spool, and counted once Redis is back.
    assert hit(client, url="https://example.vn/later") == 204
    services: Services = app.extensions["analytics"]
    registry = services.metrics.registry
    assert registry.get_sample_value("analytics_redis_errors_total", {"operation": "ping"}) == 1
    assert registry.get_sample_value("analytics_hits_total", {"outcome": "spooled"}) == 1
    assert registry.get_sample_value("analytics_hits_total", {"outcome": "lost"}) == 0
    errors = registry.get_sample_value("analytics_redis_errors_total", {"operation": "record_hit"})
    assert errors == 1
    assert registry.get_sample_value("analytics_spool_depth") == 1

    own_redis.start()
    wait_for(lambda: services.counting.writer.spool_depth == 0, "the spool to drain")
    assert client.get("/readyz").status_code == 200
    assert counters(client)["windows"]["today"]["pageviews"] == 2
    replayed = registry.get_sample_value("analytics_spool_replayed_total", {"outcome": "counted"})
    assert replayed == 1
    assert registry.get_sample_value("analytics_spool_depth") == 0
    assert not list((tmp_path / "app" / "spool").iterdir())  # nothing left on disk
