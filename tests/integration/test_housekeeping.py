"""Closing finished periods: once, in order, catching up after an outage, invisible to readers."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics.clock import FixedClock
from analytics.counting import Hit, Kind
from analytics.periods import Grain, Period, WeekStart
from analytics.scheduler import build_scheduler
from analytics.services import Services, build_services
from analytics.settings import Settings
from analytics.store import Store
from tests.helpers import BROWSER_UA, counters

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def at(clock: FixedClock, local: str, tz: ZoneInfo = HCM) -> None:
    clock.set(datetime.fromisoformat(local).replace(tzinfo=tz))


def visit(services: Services, site: str, n: int, pages: int = 1) -> None:
    for page in range(pages):
        outcome = services.counting.count(
            Hit(
                site,
                f"https://example.vn/{page}",
                Kind.PAGEVIEW,
                f"198.51.{n // 256}.{n % 256}",
                BROWSER_UA,
            )
        )
        assert outcome == "counted"


def closes(store: Store, site: str) -> dict[str, str]:
    return store.history.last_closed(site)


def test_days_weeks_and_months_close_once_into_the_history(
    services: Services, clock: FixedClock
) -> None:
    at(clock, "2026-11-29T10:00")  # a Sunday, last day of a week
    visit(services, "demo", 1, pages=3)
    visit(services, "demo", 2)
    at(clock, "2026-11-30T00:04")  # within the grace period: nothing closes yet
    services.housekeeper.run_all()
    assert closes(services.store, "demo")["d"] == "2026-11-28"
    at(clock, "2026-11-30T00:05")
    services.housekeeper.run_all()
    state = closes(services.store, "demo")
    assert state["d"] == "2026-11-29" and state["w"] == "2026-11-23"  # Sunday ended the week
    frozen = services.store.history.frozen("demo", [Period(Grain.DAY, date(2026, 11, 29))])
    assert [(c.pageviews, c.visits, c.visitors) for c in frozen.values()] == [(4, 2, 2)]
    done = dict(state)
    services.housekeeper.run_all()  # a second run changes nothing
    assert closes(services.store, "demo") == done
    at(clock, "2026-12-01T00:05")  # November has ended
    services.housekeeper.run_all()
    state = closes(services.store, "demo")
    assert (state["d"], state["w"], state["m"]) == ("2026-11-30", "2026-11-23", "2026-11")
    weeks = services.store.history.frozen("demo", [Period(Grain.WEEK, date(2026, 11, 23))])
    months = services.store.history.frozen("demo", [Period(Grain.MONTH, date(2026, 11, 1))])
    assert [(c.pageviews, c.visitors) for c in weeks.values()] == [(4, 2)]
    assert [(c.pageviews, c.visitors) for c in months.values()] == [(4, 2)]


def test_closed_windows_read_the_same_just_before_and_after(
    client: FlaskClient, services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    # 2026-05-31 is a Sunday and the last day of May: day, week and month end together.
    for n, day in enumerate(["2026-04-30", "2026-05-24", "2026-05-30", "2026-05-31"]):
        at(clock, f"{day}T20:00")
        for v in range(n + 2):
            visit(services, "demo", 10 * n + v, pages=v + 1)
    at(clock, "2026-06-01T00:05")
    before = counters(client)
    assert before["windows"]["yesterday"]["pageviews"] > 0
    assert before["windows"]["last_week"]["pageviews"] > 0
    assert before["windows"]["last_month"]["pageviews"] > 0
    assert services.housekeeper.close_periods() > 0
    after = counters(client)
    assert after == before
    # The HyperLogLogs of the closed periods are gone; their counts stay readable.
    day = services.store.conn.keys.visitors("demo", Period(Grain.DAY, date(2026, 5, 31)))
    assert not redis_client.exists(day)


def test_a_three_day_outage_is_caught_up_in_order(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    at(clock, "2026-11-25T12:00")
    visit(services, "demo", 1)
    at(clock, "2026-11-26T00:10")
    services.housekeeper.run_all()
    at(clock, "2026-11-26T12:00")
    visit(services, "demo", 2, pages=2)
    # Down from here: the clock jumps three days, nothing runs.
    at(clock, "2026-11-29T09:00")
    before = counters(client)
    assert before["windows"]["this_week"]["pageviews"] == 3
    assert before["windows"]["yesterday"]["pageviews"] == 0

    order: list[str] = []
    original = services.store.history.close_period

    def recording(
        site_id: str, period: Period, expired: Period, keep: tuple[int, int], start: WeekStart
    ) -> bool:
        closed = original(site_id, period, expired, keep, start)
        if closed:
            order.append(f"{period.grain}:{period.name}")
        return closed

    services.store.history.close_period = recording  # type: ignore[method-assign]
    services.housekeeper.run_all()  # the start after the outage
    assert order == ["d:2026-11-26", "d:2026-11-27", "d:2026-11-28"]
    assert counters(client) == before
    services.housekeeper.run_all()
    assert len(order) == 3
    history = services.history.days("demo", date(2026, 11, 25), date(2026, 11, 29))
    assert [d["pageviews"] for d in history] == [1, 2, 0, 0, 0]


def test_schedulers_started_together_close_each_period_once(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    """Two `analytics scheduler` processes and the one inside `analytics serve`, at once."""
    processes = [
        build_services(settings, clock=clock, registry=CollectorRegistry()) for _ in range(3)
    ]
    first = processes[0]
    for offset in range(20):
        at(clock, (datetime(2026, 10, 20, 12) + timedelta(days=offset)).isoformat())
        visit(first, "demo", offset)
    at(clock, "2026-11-10T12:00")

    runs: list[str] = []
    done = threading.Event()
    lock = threading.Lock()

    def executed(event: JobExecutionEvent) -> None:
        with lock:
            runs.append(event.job_id if event.exception is None else f"error {event.exception}")
            if len(runs) == 9:
                done.set()

    schedulers = [build_scheduler(p.housekeeper) for p in processes]
    for scheduler in schedulers:
        scheduler.add_listener(executed, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    for scheduler in schedulers:
        scheduler.start()
    try:
        assert done.wait(60), runs
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)
    assert sorted(runs) == sorted(["close_periods", "trim_online", "delete_salts"] * 3)
    state = first.store.history.last_closed("demo")
    # 2026-09-09 .. 2026-11-09, the 62 days of retention before today, each closed once.
    assert state["d"] == "2026-11-09"
    assert state["d:since"] == "2026-09-09"
    closes = [
        p.metrics.registry.get_sample_value("analytics_periods_closed_total", {"grain": "d"}) or 0
        for p in processes
    ]
    assert sum(closes) == 62
    history = first.history.days("demo", date(2026, 10, 20), date(2026, 11, 8))
    assert [d["pageviews"] for d in history] == [1] * 20


def test_trim_online_and_delete_salts(
    services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    at(clock, "2026-11-26T10:00")
    visit(services, "demo", 1)
    key = services.store.conn.keys.online("demo")
    assert redis_client.zcard(key) == 1
    clock.advance(1801)  # past the session timeout, the longer of the two windows
    assert services.housekeeper.trim_online() == 1
    assert redis_client.zcard(key) == 0
    salt = services.store.conn.keys.salt("2026-11-26")
    assert redis_client.exists(salt)
    at(clock, "2026-11-27T18:59")  # 11:59 UTC: 26 Nov is still under way at UTC-12
    assert services.housekeeper.delete_salts() == 0
    at(clock, "2026-11-27T19:00")  # 12:00 UTC: 26 Nov has ended everywhere
    assert services.housekeeper.delete_salts() == 1
    assert not redis_client.exists(salt)


def test_housekeeping_metrics(services: Services, clock: FixedClock) -> None:
    at(clock, "2026-11-25T12:00")
    visit(services, "demo", 1)
    at(clock, "2026-11-26T12:00")
    services.housekeeper.run_all()
    registry = services.metrics.registry
    assert registry.get_sample_value("analytics_periods_closed_total", {"grain": "d"}) == 62
    for job in ("close_periods", "trim_online", "delete_salts"):
        labels = {"task": job}
        assert registry.get_sample_value(
            "analytics_scheduler_last_success_timestamp_seconds", labels
        )
        assert (
            registry.get_sample_value("analytics_scheduler_job_duration_seconds_count", labels) == 1
        )
    with services.store.locks.exclusive("close_periods", 10) as mine:
        assert mine
        assert not services.housekeeper.run("close_periods")
    assert (
        registry.get_sample_value(
            "analytics_scheduler_lock_contention_total", {"task": "close_periods"}
        )
        == 1
    )


def test_retention_never_drops_what_was_not_frozen(services: Services, clock: FixedClock) -> None:
    """Counts from before the first close (a scheduler started late) stay readable."""
    for n, day in enumerate(["2026-07-20", "2026-09-15", "2026-11-20"]):
        at(clock, f"{day}T12:00")
        visit(services, "demo", n)
    at(clock, "2026-11-26T12:00")  # the first close ever: it starts 62 days back, at 2026-09-25
    services.housekeeper.run_all()
    at(clock, "2027-03-01T12:00")  # months later, 2026-09-25 and on have left retention
    services.housekeeper.run_all()
    days = services.history.days("demo", date(2026, 7, 20), date(2026, 11, 20))
    assert [d["date"] for d in days if d["pageviews"]] == ["2026-07-20", "2026-09-15", "2026-11-20"]
    live_key = services.store.conn.keys.counts("demo", Period(Grain.DAY, date(2026, 11, 20)))
    assert not services.store.conn.client.exists(live_key)  # frozen, then dropped by retention


def test_closing_a_closed_period_again_changes_nothing(
    services: Services, clock: FixedClock
) -> None:
    at(clock, "2026-11-25T12:00")
    visit(services, "demo", 1, pages=2)
    day = Period(Grain.DAY, date(2026, 11, 25))
    retired = Period(Grain.DAY, date(2026, 9, 24))
    assert services.store.history.close_period("demo", day, retired)
    before = (
        services.store.history.last_closed("demo"),
        services.store.history.frozen("demo", [day]),
    )
    assert not services.store.history.close_period("demo", day, retired)
    earlier = Period(Grain.DAY, date(2026, 11, 24))
    assert not services.store.history.close_period("demo", earlier, retired)  # behind the cursor
    assert (
        services.store.history.last_closed("demo"),
        services.store.history.frozen("demo", [day]),
    ) == before


def test_a_late_hit_counts_in_the_open_periods_only(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    """A web process whose clock lags stamps a hit into a day already closed."""
    at(clock, "2026-11-25T23:00")
    visit(services, "demo", 1)
    at(clock, "2026-11-26T00:10")
    services.housekeeper.close_periods()
    at(clock, "2026-11-25T23:59")  # the lagging process
    visit(services, "demo", 2)
    at(clock, "2026-11-26T00:11")
    doc = counters(client)
    assert doc["windows"]["yesterday"]["pageviews"] == 1  # frozen, as in the history
    assert services.history.days("demo", date(2026, 11, 25), date(2026, 11, 25))[0]["visits"] == 1
    assert doc["windows"]["this_week"]["pageviews"] == 2  # the week is still open
    assert doc["windows"]["total"]["pageviews"] == 2  # and no hit is lost


def test_the_first_run_catches_up_and_says_so_as_information(
    services: Services, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="analytics"):
        services.housekeeper.run_all()
    lines = {r.message for r in caplog.records if r.name == "analytics.housekeeping"}
    closed = [line for line in lines if line.startswith("housekeeping close_periods:")]
    # The 62 days of retention before today, and the weeks and months they cover.
    assert len(closed) == 1 and "finished periods closed into the history" in closed[0], lines
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.startswith("analytics"))
