"""A change of a site's week start, mid-week: this week and last week are built again from
their days, go on counting and close by the new start, and nothing of the old start is left
behind for good."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.admin import week_start_changed
from analytics.clock import FixedClock
from analytics.errors import StoreUnavailable
from analytics.periods import WeekStart
from analytics.services import Services, build_services
from analytics.settings import Settings
from analytics.store.weeks import MOVED
from tests.helpers import AUTH, call, counters, hit

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
FIRST = date(2026, 11, 2)  # a Monday: four weeks of traffic before the change
CHANGE = date(2026, 11, 26)  # a Thursday


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=HCM).astimezone(UTC)


def readers(day: date) -> int:
    """How many readers a day has: a different number each day, so that sums tell days apart."""
    return 1 + day.toordinal() % 4


@pytest.fixture
def app(admin_app: Flask) -> Flask:
    """The shared ``client`` and ``services`` fixtures, on the app with its admin API on."""
    return admin_app


def read_day(client: FlaskClient, clock: FixedClock, services: Services, day: date) -> None:
    """The day's readers, each on two pages (two pageviews, one visit), the day's last hour's
    housekeeping run beforehand (so the days before it are closed, as in production)."""
    clock.set(noon(day))
    services.housekeeper.close_periods()
    for n in range(readers(day)):
        ip = f"198.51.{day.toordinal() % 250}.{n + 1}"
        for page in ("/", f"/bai-{n}"):
            assert hit(client, url=f"https://example.vn{page}", ip=ip) == 204


def traffic(
    client: FlaskClient, clock: FixedClock, services: Services, first: date, last: date
) -> None:
    day = first
    while day <= last:
        read_day(client, clock, services, day)
        day += timedelta(days=1)


def summed(client: FlaskClient, first: date, last: date) -> dict[str, Any]:
    """The sums of the days from ``first`` to ``last``, read from the history."""
    response = client.get(f"/api/v1/sites/demo/history?from={first}&to={last}")
    assert response.status_code == 200
    days = response.get_json()["days"]
    sums = {m: sum(d[m] for d in days) for m in ("pageviews", "visits", "visitors")}
    return {"start": first.isoformat(), **sums}


def windows(client: FlaskClient) -> dict[str, Any]:
    found: dict[str, Any] = counters(client)["windows"]
    return found


def set_week_start(client: FlaskClient, week_start: str) -> None:
    response = call(client, "PATCH", "/api/v1/admin/sites/demo", {"week_start": week_start}, AUTH)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["week_start"] == week_start


def test_a_change_mid_week_builds_this_week_and_last_week_from_their_days(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, FIRST, CHANGE)
    before = windows(client)
    assert before["this_week"] == summed(client, date(2026, 11, 23), CHANGE)
    assert before["last_week"] == summed(client, date(2026, 11, 16), date(2026, 11, 22))

    set_week_start(client, "sunday")
    after = windows(client)
    # Sunday 22 to Thursday 26; Sunday 15 to Saturday 21: every metric the sum of its days.
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert after["last_week"] == summed(client, date(2026, 11, 15), date(2026, 11, 21))
    assert after["this_week"]["pageviews"] > before["this_week"]["pageviews"]
    for window in ("today", "yesterday", "this_month", "last_month", "total"):
        assert after[window] == before[window], window

    # It goes on counting in the rebuilt week, and closes by the new start: on Sunday 29 the
    # week of Sunday 22 is last week, frozen, and this week begins.
    traffic(client, clock, services, date(2026, 11, 27), date(2026, 11, 28))
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 22), date(2026, 11, 28))
    traffic(client, clock, services, date(2026, 11, 29), date(2026, 11, 30))
    later = windows(client)
    assert later["last_week"] == summed(client, date(2026, 11, 22), date(2026, 11, 28))
    assert later["this_week"] == summed(client, date(2026, 11, 29), date(2026, 11, 30))
    closed = services.store.history.last_closed("demo")
    assert closed["w"] == "2026-11-22"

    # And back to Monday, the week after: Monday 30 to today; Monday 23 to Sunday 29.
    read_day(client, clock, services, date(2026, 12, 1))
    set_week_start(client, "monday")
    back = windows(client)
    assert back["this_week"] == summed(client, date(2026, 11, 30), date(2026, 12, 1))
    assert back["last_week"] == summed(client, date(2026, 11, 23), date(2026, 11, 29))


def test_the_weeks_of_the_old_start_are_closed_and_expire(
    client: FlaskClient, clock: FixedClock, services: Services, redis_client: redis.Redis
) -> None:
    traffic(client, clock, services, FIRST, CHANGE)
    monday_weeks = {"2026-11-23", "2026-11-16", "2026-11-09", "2026-11-02"}
    for name in monday_weeks:
        assert redis_client.exists(f"va:{{demo}}:c:w:{name}")
    set_week_start(client, "sunday")
    for key in redis_client.scan_iter(match="va:{demo}:*:w:????-??-??"):
        name = key.decode().rsplit(":", 1)[1]
        if date.fromisoformat(name).weekday() == 0:  # a week of the old start
            # Still readable by a process that has not seen the change yet, closed (a late hit
            # passes it by), and gone within days: retention, by the new start, never names it.
            assert redis_client.pttl(key) > 0, key
            if b":c:w:" in key:
                assert redis_client.hexists(key, "visitors"), key
        else:
            assert name in {"2026-11-22", "2026-11-15"}, key
    assert not redis_client.exists("va:{demo}:u:w:2026-11-23")  # its HyperLogLog is gone


def test_the_rebuilt_weeks_keep_their_lists_and_a_reset_of_this_week_undoes(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    pages = client.get("/api/v1/sites/demo/pages?window=this_week").get_json()["pages"]
    assert pages[0] == {"path": "/", "pageviews": sum(map(readers, days(23, 26)))}
    set_week_start(client, "sunday")
    # The week's top pages are those of the week it replaces (the days' own lists are not kept
    # long enough to add up).
    after = client.get("/api/v1/sites/demo/pages?window=this_week").get_json()
    assert after["start"] == "2026-11-22" and after["pages"] == pages

    rebuilt = windows(client)["this_week"]
    done = call(client, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["this_week"]}, AUTH)
    assert done.status_code == 200
    assert done.get_json()["before"]["windows"]["this_week"] == rebuilt
    assert windows(client)["this_week"]["visitors"] == 0
    reset_id = done.get_json()["reset_id"]
    undo = call(client, "POST", f"/api/v1/admin/sites/demo/resets/{reset_id}/undo", None, AUTH)
    assert undo.status_code == 200
    assert windows(client)["this_week"] == rebuilt  # the visitors of closed days come back too


def days(first: int, last: int) -> list[date]:
    return [date(2026, 11, d) for d in range(first, last + 1)]


def test_rebuilding_twice_gives_the_same_weeks(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, date(2026, 11, 9), CHANGE)
    set_week_start(client, "sunday")
    once = windows(client)
    # Another process that saw the change too (at start, from a sites file) finds it applied.
    weeks = services.store.weeks
    assert weeks.follow("demo", CHANGE, assumed=WeekStart.MONDAY) is None
    assert windows(client) == once
    # Built again from the days by the same start (as after an undo), the weeks are the same.
    assert weeks.rebuild("demo", CHANGE) is not None
    assert windows(client) == once
    read_day(client, clock, services, date(2026, 11, 30))  # last week closes again, by Sunday
    assert windows(client)["last_week"] == summed(client, date(2026, 11, 22), date(2026, 11, 28))


def test_a_sites_file_that_changes_the_week_start_rebuilds_the_weeks(
    client: FlaskClient, clock: FixedClock, services: Services, settings: Settings, tmp_path: Path
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    sites_file = tmp_path / "sites.toml"
    sites_file.write_text('[[site]]\nid = "demo"\nweek_start = "sunday"\n', encoding="utf-8")
    started = build_services(
        settings.replace(sites_file=sites_file),
        clock=clock,
        registry=CollectorRegistry(),
        seed=True,
    )
    try:
        assert started.sites.get("demo").week_start is WeekStart.SUNDAY
        assert windows(client)["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    finally:
        started.store.close()


def test_a_process_that_has_not_seen_the_change_counts_the_day_but_not_the_rebuilt_week(
    client: FlaskClient, clock: FixedClock, services: Services, settings: Settings
) -> None:
    traffic(client, clock, services, date(2026, 11, 23), CHANGE)
    stale_app = create_app(
        settings.replace(site_cache_seconds=300), clock=clock, registry=CollectorRegistry()
    )
    stale = stale_app.test_client()
    assert windows(stale)["this_week"]["start"] == "2026-11-23"  # it has read the site
    set_week_start(client, "sunday")
    before = windows(client)
    assert hit(stale, url="https://example.vn/late", ip="192.0.2.9") == 204
    after = windows(client)
    assert after["today"]["pageviews"] == before["today"]["pageviews"] + 1
    assert after["this_month"]["pageviews"] == before["this_month"]["pageviews"] + 1
    assert after["this_week"] == before["this_week"]  # its week, of the old start, is closed


def old_start_keys_without_ttl(redis_client: redis.Redis, weekday: int) -> list[bytes]:
    """Week keys named by a day of ``weekday`` (0 Monday) that would stay for good."""
    return [
        key
        for key in redis_client.scan_iter(match="va:{demo}:*:w:????-??-??")
        if date.fromisoformat(key.decode().rsplit(":", 1)[1]).weekday() == weekday
        and redis_client.pttl(key) == -1
    ]


def test_sunday_to_monday_as_a_first_change(
    client: FlaskClient, clock: FixedClock, services: Services, redis_client: redis.Redis
) -> None:
    set_week_start(client, "sunday")  # before any traffic: nothing to build
    traffic(client, clock, services, FIRST, CHANGE)
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    set_week_start(client, "monday")
    after = windows(client)
    assert after["this_week"] == summed(client, date(2026, 11, 23), CHANGE)
    assert after["last_week"] == summed(client, date(2026, 11, 16), date(2026, 11, 22))
    assert old_start_keys_without_ttl(redis_client, 6) == []


def test_a_housekeeping_behind_leaves_no_week_of_the_old_start_for_good(
    client: FlaskClient, clock: FixedClock, services: Services, redis_client: redis.Redis
) -> None:
    traffic(client, clock, services, date(2026, 9, 1), date(2026, 11, 9))
    for day in days(10, 26):  # the housekeeping stopped: hits only
        clock.set(noon(day))
        assert hit(client, url="https://example.vn/", ip="192.0.2.1") == 204
    set_week_start(client, "sunday")
    assert old_start_keys_without_ttl(redis_client, 0) == []
    services.housekeeper.close_periods()  # it runs again, and catches up by the new start
    after = windows(client)
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert after["last_week"] == summed(client, date(2026, 11, 15), date(2026, 11, 21))
    assert services.store.history.last_closed("demo")["w"] == "2026-11-15"
    assert old_start_keys_without_ttl(redis_client, 0) == []


def test_on_a_quiet_site_a_late_hit_by_the_old_start_leaves_nothing_for_good(
    client: FlaskClient, clock: FixedClock, services: Services, settings: Settings,
    redis_client: redis.Redis,
) -> None:  # fmt: skip
    clock.set(datetime(2026, 11, 30, 0, 10, tzinfo=HCM))  # Monday, ten past midnight
    stale = create_app(
        settings.replace(site_cache_seconds=300), clock=clock, registry=CollectorRegistry()
    ).test_client()
    assert windows(stale)["this_week"]["start"] == "2026-11-30"
    set_week_start(client, "sunday")
    assert hit(stale, url="https://example.vn/", ip="192.0.2.1") == 204
    assert windows(client)["today"]["pageviews"] == 1
    assert old_start_keys_without_ttl(redis_client, 0) == []


def test_a_timezone_changed_with_the_week_start_leaves_no_week_of_the_old_start(
    client: FlaskClient, clock: FixedClock, services: Services, redis_client: redis.Redis
) -> None:
    traffic(client, clock, services, date(2026, 11, 23), date(2026, 11, 29))
    clock.set(datetime(2026, 11, 30, 8, 0, tzinfo=HCM))  # Monday here, Sunday in New York
    assert hit(client, url="https://example.vn/thu-hai", ip="192.0.2.1") == 204
    change = {"week_start": "sunday", "timezone": "America/New_York"}
    assert call(client, "PATCH", "/api/v1/admin/sites/demo", change, AUTH).status_code == 200
    assert old_start_keys_without_ttl(redis_client, 0) == []
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 29), date(2026, 11, 29))
    # This week's lists are those of the week this week was by the old timezone too.
    pages = client.get("/api/v1/sites/demo/pages?window=this_week").get_json()["pages"]
    assert {"path": "/thu-hai", "pageviews": 1} in pages


def test_the_script_builds_nothing_for_a_start_that_is_not_the_sites_or_not_followed(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    """What two processes racing rely on: each builds only what it read, or nothing."""
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    before = windows(client)
    weeks = services.store.weeks
    args = ("demo", CHANGE, WeekStart.MONDAY, WeekStart.SUNDAY)
    # The site still starts its weeks on Monday.
    assert weeks._run(*args, "monday", None, CHANGE) == (MOVED, (0, 0))
    set_week_start(client, "sunday")
    after = windows(client)
    assert after != before
    # The weeks follow Sunday already: a caller that read "monday" builds nothing again.
    assert weeks._run(*args, "monday", None, CHANGE) == (MOVED, (0, 0))
    assert windows(client) == after


def test_a_change_saved_but_not_applied_is_applied_by_the_housekeeping(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    site = services.sites.get("demo")
    # As if Redis went away between the save and the rebuild: the site is saved alone.
    services.sites.save(site.updated({"week_start": "sunday"}))
    assert windows(client)["this_week"]["pageviews"] == 0
    services.housekeeper.close_periods()
    after = windows(client)
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert after["last_week"] == summed(client, date(2026, 11, 15), date(2026, 11, 21))


@pytest.mark.parametrize("order", ["in order", "the first change applied last"])
def test_two_changes_racing_end_with_the_weeks_of_the_start_saved_last(
    client: FlaskClient, clock: FixedClock, services: Services, order: str
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    monday = services.sites.get("demo")
    sunday = monday.updated({"week_start": "sunday"})
    services.sites.save(sunday)  # A saves Sunday; then B saves Monday again
    services.sites.save(monday)
    changes = [(monday, sunday), (sunday, monday)]
    if order != "in order":
        changes.reverse()
    for before, after in changes:
        week_start_changed(services.store, clock, before, after)
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 23), CHANGE)
    assert hit(client, url="https://example.vn/next", ip="192.0.2.1") == 204
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 23), CHANGE)


@pytest.mark.parametrize("reset", [["today"], ["this_week"], ["today", "this_week"]])
def test_an_undo_after_a_change_adds_back_to_the_days_and_the_weeks_follow(
    client: FlaskClient,
    clock: FixedClock,
    services: Services,
    redis_client: redis.Redis,
    reset: list[str],
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    done = call(client, "POST", "/api/v1/admin/sites/demo/reset", {"windows": reset}, AUTH)
    reset_id = done.get_json()["reset_id"]
    set_week_start(client, "sunday")
    # The weeks are built from their days: a reset of this_week alone does not hold through it.
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    undo = call(client, "POST", f"/api/v1/admin/sites/demo/resets/{reset_id}/undo", None, AUTH)
    assert undo.status_code == 200
    after = windows(client)
    assert after["today"] == summed(client, CHANGE, CHANGE)
    assert after["today"]["pageviews"] == 2 * readers(CHANGE)
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert old_start_keys_without_ttl(redis_client, 0) == []


def test_a_change_and_a_change_back_within_a_week_leave_the_next_week_counting(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    set_week_start(client, "sunday")
    read_day(client, clock, services, date(2026, 11, 27))
    set_week_start(client, "monday")
    traffic(client, clock, services, date(2026, 11, 28), date(2026, 12, 2))
    after = windows(client)
    assert after["this_week"] == summed(client, date(2026, 11, 30), date(2026, 12, 2))
    assert after["last_week"] == summed(client, date(2026, 11, 23), date(2026, 11, 29))


def test_a_change_its_process_could_not_apply_is_applied_by_the_housekeeping_on_an_older_site(
    client: FlaskClient,
    clock: FixedClock,
    services: Services,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    redis_client.hdel("va:{demo}:closed", "w:start")  # registered before it was recorded

    def away(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("Redis went away")

    monkeypatch.setattr(services.store.weeks, "follow", away)
    change = {"week_start": "sunday"}
    assert call(client, "PATCH", "/api/v1/admin/sites/demo", change, AUTH).status_code == 503
    monkeypatch.undo()
    assert services.sites.get("demo").week_start is WeekStart.SUNDAY  # saved, not applied
    services.housekeeper.close_periods()
    after = windows(client)
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert after["last_week"] == summed(client, date(2026, 11, 15), date(2026, 11, 21))


def test_an_undo_after_a_change_and_a_change_back_adds_nothing_twice(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    done = call(client, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["this_week"]}, AUTH)
    set_week_start(client, "sunday")
    set_week_start(client, "monday")  # the same start as the reset's, weeks built twice since
    reset_id = done.get_json()["reset_id"]
    undo = call(client, "POST", f"/api/v1/admin/sites/demo/resets/{reset_id}/undo", None, AUTH)
    assert undo.status_code == 200
    assert windows(client)["this_week"] == summed(client, date(2026, 11, 23), CHANGE)


def test_an_undo_of_a_reset_recorded_before_changes_were_counted_leaves_nothing_for_good(
    client: FlaskClient, clock: FixedClock, services: Services, redis_client: redis.Redis
) -> None:
    traffic(client, clock, services, date(2026, 11, 16), CHANGE)
    done = call(client, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["all"]}, AUTH)
    reset_id = done.get_json()["reset_id"]
    assert redis_client.hdel(f"va:{{demo}}:reset:{reset_id}", "week_changes") == 1
    set_week_start(client, "sunday")
    undo = call(client, "POST", f"/api/v1/admin/sites/demo/resets/{reset_id}/undo", None, AUTH)
    assert undo.status_code == 200
    after = windows(client)
    assert after["today"] == summed(client, CHANGE, CHANGE)
    assert after["this_week"] == summed(client, date(2026, 11, 22), CHANGE)
    assert old_start_keys_without_ttl(redis_client, 0) == []
