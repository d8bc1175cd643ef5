"""POST /api/v1/admin/sites/{site}/history: imported days in the history, every window covering
them and the total, replaced (never doubled) by a second import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.imports import MAX_DAY_COUNT, MAX_IMPORT_DAYS
from analytics.periods import WINDOWS, local_date, windows_at
from analytics.reading import days_of
from analytics.services import Services
from analytics.settings import Settings
from analytics.store import WindowCounts
from tests.helpers import AUTH, TOKEN, audit, call, counters, hit

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
PATH = "/api/v1/admin/sites/{}/history"
# The clock's day is Thursday 2026-11-26 (tests/helpers.EXAMPLE_INSTANT).


@pytest.fixture
def admin(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> FlaskClient:
    app: Flask = create_app(
        settings.replace(admin_token=TOKEN), clock=clock, registry=CollectorRegistry()
    )
    return app.test_client()


def day(when: str, pageviews: int, visits: int | None = None, visitors: int | None = None) -> Any:
    found: dict[str, Any] = {"date": when, "pageviews": pageviews}
    if visits is not None:
        found["visits"] = visits
    if visitors is not None:
        found["visitors"] = visitors
    return found


def send(admin: FlaskClient, days: list[Any], site: str = "demo") -> Any:
    return call(admin, "POST", PATH.format(site), {"days": days}, AUTH)


def imported(admin: FlaskClient, days: list[Any], site: str = "demo") -> int:
    response = send(admin, days, site)
    assert response.status_code == 200, response.get_data(as_text=True)
    count: int = response.json["imported"]
    return count


def windows(admin: FlaskClient, site: str = "demo") -> dict[str, tuple[int, int, int]]:
    return {
        name: (w["pageviews"], w["visits"], w["visitors"])
        for name, w in counters(admin, site)["windows"].items()
    }


def history(admin: FlaskClient, first: str, last: str, site: str = "demo") -> list[Any]:
    response = admin.get(f"/api/v1/sites/{site}/history", query_string={"from": first, "to": last})
    assert response.status_code == 200
    return [(d["date"], d["pageviews"], d["visits"], d["visitors"]) for d in response.json["days"]]


# Pageviews in powers of ten, so that a window's sum says which days it covers.
DAYS = [
    day("2026-11-25", 1, 2, 3),  # Wednesday: yesterday, this week, this month
    day("2026-11-22", 10, 20, 30),  # Sunday: last week (Monday weeks), this month
    day("2026-11-01", 100, 200, 300),  # this month, no week shown
    day("2026-10-31", 1000, 2000, 3000),  # last month
    day("2025-03-01", 10000),  # total only; visits and visitors default to 0
]


def test_imported_days_count_in_every_window_that_covers_them_and_in_total(
    admin: FlaskClient, services: Services
) -> None:
    hit(admin)  # today, live: 1 1 1
    assert call(admin, "PUT", "/api/v1/admin/sites/demo/offsets", {"pageviews": 5}, AUTH).json
    assert imported(admin, DAYS) == 5
    assert windows(admin) == {
        "today": (1, 1, 1),
        "yesterday": (1, 2, 3),
        "this_week": (1 + 1, 1 + 2, 1 + 3),
        "last_week": (10, 20, 30),
        "this_month": (1 + 111, 1 + 222, 1 + 333),
        "last_month": (1000, 2000, 3000),
        "total": (1 + 11111 + 5, 1 + 2222, 1 + 3333),
    }
    # A week starting on Sunday covers the 22nd in this week, and nothing of last week; the
    # week is built again from its days, today's live hit with them.
    patched = call(admin, "PATCH", "/api/v1/admin/sites/demo", {"week_start": "sunday"}, AUTH)
    assert patched.status_code == 200
    found = windows(admin)
    assert found["this_week"] == (1 + 11, 1 + 22, 1 + 33)
    assert found["last_week"] == (0, 0, 0)
    assert found["this_month"] == (1 + 111, 1 + 222, 1 + 333)


def _hmgets_and_exists(redis_client: redis.Redis, read: Callable[[], object]) -> tuple[int, int]:
    """How many HMGET and EXISTS commands Redis ran for ``read`` (the script's own included)."""
    redis_client.config_resetstat()
    read()
    stats = redis_client.info("commandstats")
    hmget, exists = (
        stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("hmget", "exists")
    )
    return int(hmget), int(exists)


def test_a_site_without_imports_reads_the_same_and_never_looks_imports_up(
    admin: FlaskClient, services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    hit(admin)
    hit(admin, url="https://example.vn/2", ip="198.51.100.9")
    site = services.sites.get("demo")
    by_name = windows_at(local_date(clock(), site.zone), site.week_start)
    periods = [by_name[name] for name in WINDOWS]
    dates = [days_of(p) for p in periods]
    counts = services.store.counts

    def plain() -> tuple[int, list[WindowCounts]]:
        return counts.read_windows("demo", periods, 0)

    def with_imports() -> tuple[int, list[WindowCounts]]:
        return counts.read_windows("demo", periods, 0, dates)

    assert with_imports() == plain()
    assert with_imports()[1][WINDOWS.index("today")] == WindowCounts(2, 2, 2)
    # One HMGET per window's counts, and one EXISTS that finds no imported sums.
    hmgets, exists = _hmgets_and_exists(redis_client, plain)
    assert (hmgets, exists) == (len(WINDOWS), 0)
    assert _hmgets_and_exists(redis_client, with_imports) == (hmgets, 1)
    # Once a day is imported, every window looks its dates up again (the total its sums).
    assert imported(admin, [day("2026-11-25", 1, 2, 3)]) == 1
    assert _hmgets_and_exists(redis_client, with_imports) == (2 * len(WINDOWS), 1)
    assert windows(admin)["yesterday"] == (1, 2, 3)
    assert windows(admin)["today"] == (2, 2, 2)


def test_windows_across_a_week_and_a_month_boundary(admin: FlaskClient, clock: FixedClock) -> None:
    # Tuesday 2026-12-01: this week began on Monday 30 November, in last month.
    clock.set(datetime(2026, 12, 1, 9, tzinfo=HCM))
    assert imported(admin, [day("2026-11-30", 7, 6, 5), day("2026-11-29", 40, 30, 20)]) == 2
    found = windows(admin)
    assert found["yesterday"] == (7, 6, 5)
    assert found["this_week"] == (7, 6, 5)
    assert found["last_week"] == (40, 30, 20)
    assert found["this_month"] == (0, 0, 0)
    assert found["last_month"] == (47, 36, 25)
    assert found["total"] == (47, 36, 25)
    # Next Monday the 30th is last week's, and the 29th no window's but the total.
    clock.set(datetime(2026, 12, 7, 9, tzinfo=HCM))
    found = windows(admin)
    assert found["this_week"] == (0, 0, 0) and found["yesterday"] == (0, 0, 0)
    assert found["last_week"] == (7, 6, 5)
    assert found["last_month"] == (47, 36, 25) and found["total"] == (47, 36, 25)


def test_importing_again_replaces_what_was_imported_never_what_was_counted_live(
    admin: FlaskClient, services: Services, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 11, 24, 10, tzinfo=HCM))
    hit(admin)  # the 24th, live
    clock.set(datetime(2026, 11, 26, 10, tzinfo=HCM))
    hit(admin, ip="198.51.100.9")
    days = [day("2026-11-24", 50, 40, 30), day("2026-11-25", 8, 4, 2)]
    assert imported(admin, days) == 2
    first = windows(admin), history(admin, "2026-11-24", "2026-11-26")
    assert imported(admin, days) == 2
    assert (windows(admin), history(admin, "2026-11-24", "2026-11-26")) == first
    assert first[1] == [
        ("2026-11-24", 51, 41, 31),
        ("2026-11-25", 8, 4, 2),
        ("2026-11-26", 1, 1, 1),
    ]
    assert first[0]["total"] == (60, 46, 34)
    # A new value for the 24th replaces the imported one; the live hit stays; zeros empty it.
    assert imported(admin, [day("2026-11-24", 5), day("2026-11-25", 0, 0, 0)]) == 2
    assert history(admin, "2026-11-24", "2026-11-26") == [
        ("2026-11-24", 6, 1, 1),
        ("2026-11-25", 0, 0, 0),
        ("2026-11-26", 1, 1, 1),
    ]
    assert windows(admin)["total"] == (7, 2, 2)
    assert windows(admin)["this_week"] == (7, 2, 2)
    # Closing the days into the history keeps the imported counts apart from the frozen ones.
    clock.set(datetime(2026, 11, 28, 10, tzinfo=HCM))
    services.housekeeper.run_all()
    assert history(admin, "2026-11-24", "2026-11-26") == [
        ("2026-11-24", 6, 1, 1),
        ("2026-11-25", 0, 0, 0),
        ("2026-11-26", 1, 1, 1),
    ]
    assert windows(admin)["this_week"] == (7, 2, 2)


def test_the_audit_log_says_how_many_days_and_which(admin: FlaskClient) -> None:
    assert imported(admin, [day("2026-11-20", 3), day("2024-02-29", 1), day("2025-01-01", 2)])
    entry = audit(admin)[0]
    assert entry["action"] == "history_imported" and entry["site"] == "demo"
    assert entry["change"] == {"days": 3, "first": "2024-02-29", "last": "2026-11-20"}
    assert entry["ip"].startswith("net:")


def test_a_reset_leaves_imported_days_alone_and_deleting_the_site_removes_them(
    admin: FlaskClient, redis_client: redis.Redis
) -> None:
    hit(admin)
    assert imported(admin, [day("2026-11-25", 9, 9, 9)]) == 1
    reset = call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["all"]}, AUTH)
    assert reset.status_code == 200
    assert reset.json["before"]["windows"]["total"]["pageviews"] == 10
    found = windows(admin)
    assert found["today"] == (0, 0, 0)
    assert found["this_week"] == found["total"] == found["yesterday"] == (9, 9, 9)
    assert set(redis_client.scan_iter(match="va:{demo}:imp:*")) == {
        b"va:{demo}:imp:d",
        b"va:{demo}:imp:t",
    }
    deleted = call(admin, "DELETE", "/api/v1/admin/sites/demo?confirm=demo", headers=AUTH)
    assert deleted.status_code == 200
    assert list(redis_client.scan_iter(match="va:{demo}:*")) == []
    call(admin, "POST", "/api/v1/admin/sites", {"id": "demo"}, AUTH)
    assert windows(admin)["total"] == (0, 0, 0)


def _many(count: int) -> list[Any]:
    start = date(2010, 1, 1)
    return [day(str(start + timedelta(days=n)), 1) for n in range(count)]


GOOD = day("2026-11-20", 1)
BAD_BODIES: list[tuple[str, Any, str]] = [
    ("list", [GOOD], "JSON object"),
    ("no-days", {}, "'days'"),
    ("unknown-field", {"days": [GOOD], "site": "demo"}, "'site'"),
    ("days-not-list", {"days": {"date": "2026-11-20"}}, "'days'"),
    ("day-not-object", {"days": [GOOD, "2026-11-21"]}, "'days[1]'"),
    ("unknown-day-field", {"days": [GOOD, {**GOOD, "bounces": 3}]}, "'days[1].bounces'"),
    ("no-date", {"days": [{"pageviews": 1}]}, "'days[0].date'"),
    ("no-pageviews", {"days": [GOOD, {"date": "2026-11-21"}]}, "'days[1].pageviews'"),
    ("short-date", {"days": [day("2026-11-2", 1)]}, "'days[0].date'"),
    ("no-such-date", {"days": [GOOD, day("2026-02-30", 1)]}, "'days[1].date'"),
    ("date-number", {"days": [{"date": 20261120, "pageviews": 1}]}, "'days[0].date'"),
    ("today", {"days": [GOOD, day("2026-11-26", 1)]}, "'days[1].date'"),
    ("future", {"days": [day("2027-01-01", 1)]}, "'days[0].date'"),
    ("too-old", {"days": [day("1989-12-31", 1)]}, "'days[0].date'"),
    ("repeated", {"days": [GOOD, day("2026-11-21", 1), GOOD]}, "'days[2].date'"),
    ("negative", {"days": [day("2026-11-20", -1)]}, "'days[0].pageviews'"),
    ("fraction", {"days": [day("2026-11-20", 1, 1.5)]}, "'days[0].visits'"),
    ("text", {"days": [day("2026-11-20", 1, 1, "2")]}, "'days[0].visitors'"),  # type: ignore[arg-type]
    ("bool", {"days": [{"date": "2026-11-20", "pageviews": True}]}, "'days[0].pageviews'"),
    (
        "null",
        {"days": [{"date": "2026-11-20", "pageviews": 1, "visits": None}]},
        "'days[0].visits'",
    ),
    ("huge", {"days": [day("2026-11-20", 1, MAX_DAY_COUNT + 1)]}, "'days[0].visits'"),
    ("first-bad-named", {"days": [GOOD, day("2026-11-30", -1)]}, "'days[1].date'"),
    ("too-many", {"days": _many(MAX_IMPORT_DAYS + 1)}, "'days'"),
]


@pytest.mark.parametrize(
    ("body", "named"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_a_bad_body_is_400_naming_the_first_bad_day_and_imports_nothing(
    admin: FlaskClient, body: Any, named: str
) -> None:
    response = call(admin, "POST", PATH.format("demo"), body, AUTH)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "invalid_request"
    assert named in response.json["error"]["message"]
    assert windows(admin)["total"] == (0, 0, 0)
    assert all(e["action"] != "history_imported" for e in audit(admin))


def test_not_json_is_400_and_an_unknown_site_is_404(admin: FlaskClient) -> None:
    response = admin.post(PATH.format("demo"), data="date,pageviews", headers=AUTH)
    assert response.status_code == 400
    response = send(admin, [GOOD], site="nope")
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_site"


def test_3660_days_go_in_one_call_and_an_empty_list_imports_none(admin: FlaskClient) -> None:
    assert imported(admin, []) == 0
    assert imported(admin, _many(MAX_IMPORT_DAYS)) == MAX_IMPORT_DAYS
    assert windows(admin)["total"] == (MAX_IMPORT_DAYS, 0, 0)
    assert history(admin, "2010-01-01", "2010-01-02") == [
        ("2010-01-01", 1, 0, 0),
        ("2010-01-02", 1, 0, 0),
    ]


def test_a_body_of_3660_days_of_big_counts_is_taken_and_a_bigger_one_is_413(
    admin: FlaskClient,
) -> None:
    big = MAX_DAY_COUNT
    days = [{**d, "visits": big, "visitors": big, "pageviews": big} for d in _many(MAX_IMPORT_DAYS)]
    assert imported(admin, days) == MAX_IMPORT_DAYS
    padded = admin.post(
        PATH.format("demo"),
        data=b'{"days": []' + b" " * (480 * 1024) + b"}",
        content_type="application/json",
        headers=AUTH,
    )
    assert padded.status_code == 413
    # The other admin routes keep their 64 KiB.
    patch = admin.patch(
        "/api/v1/admin/sites/demo",
        data=b'{"name": "x"' + b" " * (64 * 1024) + b"}",
        content_type="application/json",
        headers=AUTH,
    )
    assert patch.status_code == 413


def test_without_the_token_401_and_with_the_admin_api_off_403(
    admin: FlaskClient, client: FlaskClient
) -> None:
    response = call(admin, "POST", PATH.format("demo"), {"days": [GOOD]})
    assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    assert call(admin, "POST", PATH.format("demo"), {"days": [GOOD]}, wrong).status_code == 401
    # ``client`` is an app without an admin token.
    assert call(client, "POST", PATH.format("demo"), {"days": [GOOD]}, AUTH).status_code == 403
    assert windows(admin)["total"] == (0, 0, 0)
