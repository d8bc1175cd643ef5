"""Admin operations at their edges: undo once a period has closed, deletes racing hits from
another process, the read cache after a reset, a flood of failed logins against the audit
log, oversized bodies, and a deleted demo site across a restart."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import AUTH, TOKEN, audit, call, counters, hit

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def admin_app(settings: Settings, clock: FixedClock, **changes: object) -> Flask:
    return create_app(
        settings.replace(admin_token=TOKEN, **changes), clock=clock, registry=CollectorRegistry()
    )


@pytest.fixture
def admin(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> FlaskClient:
    return admin_app(settings, clock).test_client()


def window(client: FlaskClient, name: str) -> tuple[int, int, int]:
    w = counters(client)["windows"][name]
    return w["pageviews"], w["visits"], w["visitors"]


def test_undo_is_refused_once_a_period_it_emptied_has_closed(
    admin: FlaskClient, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 11, 26, 23, 0, tzinfo=HCM))
    for n in range(5):
        hit(admin, url=f"https://example.vn/{n}", ip=f"198.51.100.{n}")
    today = call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["today"]}, AUTH)
    total = call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["total"]}, AUTH)
    hit(admin, url="https://example.vn/late", ip="198.51.100.99")

    # Past midnight and the close grace: the 26th is frozen into the history.
    clock.set(datetime(2026, 11, 27, 0, 10, tzinfo=HCM))
    admin_services: Services = admin.application.extensions["analytics"]
    admin_services.housekeeper.run_all()
    yesterday = window(admin, "yesterday")
    undo = call(
        admin, "POST", f"/api/v1/admin/sites/demo/resets/{today.json['reset_id']}/undo", None, AUTH
    )
    assert undo.status_code == 409
    assert undo.json["error"]["code"] == "period_closed"
    assert "closed into the history" in undo.json["error"]["message"]
    assert window(admin, "yesterday") == yesterday == (1, 1, 1)  # nothing half-restored
    history = admin.get("/api/v1/sites/demo/history?from=2026-11-26&to=2026-11-26").json
    assert history["days"][0]["pageviews"] == 1

    # The total never closes: its reset can still be undone, onto the hit since.
    undone = call(
        admin, "POST", f"/api/v1/admin/sites/demo/resets/{total.json['reset_id']}/undo", None, AUTH
    )
    assert undone.status_code == 200
    assert window(admin, "total") == (6, 6, 6)


def test_a_delete_wins_over_a_process_that_still_has_the_site_cached(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    admin = admin_app(settings, clock).test_client()
    other = create_app(
        settings.replace(site_cache_seconds=300), clock=clock, registry=CollectorRegistry()
    ).test_client()
    assert hit(other) == 204  # the other process has the site cached now
    deleted = call(admin, "DELETE", "/api/v1/admin/sites/demo?confirm=demo", None, AUTH)
    assert deleted.status_code == 200
    for n in range(3):
        hit(other, url=f"https://example.vn/after/{n}", ip=f"198.51.100.{n + 1}")
    assert list(redis_client.scan_iter(match="va:{demo}:*")) == []
    services: Services = other.application.extensions["analytics"]
    assert (
        services.metrics.registry.get_sample_value(
            "analytics_hits_total", {"outcome": "unknown_site"}
        )
        == 3
    )


def test_counters_read_right_after_a_reset_are_not_from_the_cache(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    admin = admin_app(settings, clock, read_cache_seconds=2.0).test_client()
    for n in range(3):
        hit(admin, url=f"https://example.vn/{n}", ip=f"198.51.100.{n}")
    assert window(admin, "today") == (3, 3, 3)  # now in the read cache
    reset = call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["today"]}, AUTH)
    assert reset.status_code == 200
    assert window(admin, "today") == (0, 0, 0)
    call(admin, "PUT", "/api/v1/admin/sites/demo/offsets", {"pageviews": 7}, AUTH)
    assert window(admin, "total")[0] == 3 + 7


def test_failed_logins_never_push_admin_actions_out_of_the_audit_log(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    admin = admin_app(settings, clock).test_client()
    call(admin, "PATCH", "/api/v1/admin/sites/demo", {"name": "Tin tức"}, AUTH)
    long_path = "/api/v1/admin/sites/" + "x" * 10_000
    for n in range(300):  # from many networks, each under its own rate limit
        response = admin.get(long_path, environ_base={"REMOTE_ADDR": f"10.{n // 250}.{n % 250}.1"})
        assert response.status_code == 401
    assert redis_client.xlen("va:audit") == 1  # the admin actions' stream holds actions only
    assert redis_client.xlen("va:audit:auth") == 300
    entries = audit(admin)
    assert len(entries) == 100 and entries[0]["action"] == "auth_failed"
    assert len(entries[0]["change"]["path"]) == 200
    everything = admin.get("/api/v1/admin/audit?limit=1000", headers=AUTH).json["entries"]
    assert [e["action"] for e in everything].count("auth_failed") == 300
    assert everything[-1]["action"] == "site_updated"  # the oldest, still there
    times = [e["time"] for e in everything]
    assert times == sorted(times, reverse=True)
    for bad in ("0", "abc", "10001"):
        assert admin.get(f"/api/v1/admin/audit?limit={bad}", headers=AUTH).status_code == 400


def test_admin_bodies_are_bounded(admin: FlaskClient) -> None:
    big = {"name": "x" * (70 * 1024)}
    response = call(admin, "PATCH", "/api/v1/admin/sites/demo", big, AUTH)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_a_deleted_demo_site_stays_deleted_after_a_restart(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    admin = admin_app(settings, clock).test_client()
    call(admin, "POST", "/api/v1/admin/sites", {"id": "tin-tuc"}, AUTH)
    assert call(admin, "DELETE", "/api/v1/admin/sites/demo?confirm=demo", None, AUTH).json[
        "deleted"
    ]
    restarted = admin_app(settings, clock).test_client()
    assert restarted.get("/api/v1/sites/demo/counters").status_code == 404
    listed = call(restarted, "GET", "/api/v1/admin/sites", None, AUTH).json["sites"]
    assert [s["id"] for s in listed] == ["tin-tuc"]
    # On an empty Redis the demo site is there to try the service with.
    redis_client.flushall()
    fresh = admin_app(settings, clock).test_client()
    assert fresh.get("/api/v1/sites/demo/counters").status_code == 200
