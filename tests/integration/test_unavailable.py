"""What a 503 says when Redis is away: what is wrong, not which operation failed; the operation
goes to the metrics (and the logs) only. A beacon answers 503 only when the spool cannot keep
its hit either."""

from __future__ import annotations

from pathlib import Path

from analytics.clock import FixedClock
from analytics.embedded import EmbeddedRedis
from analytics.services import Services
from analytics.store import OPERATIONS
from tests.helpers import BROWSER_UA, app_on, hit


def test_a_503_names_no_store_operation(tmp_path: Path, clock: FixedClock) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    server.start()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    try:
        # A spool that cannot be written: under a file, not a directory.
        app = app_on(server.url, blocked / "data", clock)
        client = app.test_client()
        assert hit(client) == 204
    finally:
        server.stop()
    responses = [
        client.get("/api/v1/sites/other/counters"),
        client.post(
            "/api/v1/hit",
            data='{"site": "demo", "url": "https://example.vn/"}',
            content_type="text/plain",
            headers={"User-Agent": BROWSER_UA},
        ),
    ]
    for response in responses:
        assert response.status_code == 503
        error = response.get_json()["error"]
        assert error["code"] == "store_unavailable"
        message = error["message"]
        assert "try again" in message
        assert not any(operation in message for operation in OPERATIONS), message
    services: Services = app.extensions["analytics"]
    registry = services.metrics.registry
    errors = registry.get_sample_value("analytics_redis_errors_total", {"operation": "record_hit"})
    assert errors == 1
    assert registry.get_sample_value("analytics_hits_total", {"outcome": "lost"}) == 1
    assert registry.get_sample_value("analytics_hits_total", {"outcome": "invalid"}) == 0
