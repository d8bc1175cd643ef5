from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.periods import (
    TOTAL,
    WINDOWS,
    Grain,
    Period,
    WeekStart,
    local_date,
    periods_of_hit,
    week_start_of,
    windows_at,
)


def test_local_date_follows_the_zone_not_utc() -> None:
    instant = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # midnight in Ho Chi Minh City
    assert local_date(instant, ZoneInfo("Asia/Ho_Chi_Minh")) == date(2026, 11, 27)
    assert local_date(instant, ZoneInfo("America/Los_Angeles")) == date(2026, 11, 26)
    assert local_date(instant, ZoneInfo("Pacific/Kiritimati")) == date(2026, 11, 27)


def test_local_date_refuses_naive_instants() -> None:
    with pytest.raises(ValueError):
        local_date(datetime(2026, 1, 1), ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("day", "monday", "sunday"),
    [
        (date(2026, 11, 26), date(2026, 11, 23), date(2026, 11, 22)),  # Thursday
        (date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 22)),  # Monday
        (date(2026, 11, 22), date(2026, 11, 16), date(2026, 11, 22)),  # Sunday
        (date(2027, 1, 3), date(2026, 12, 28), date(2027, 1, 3)),  # Sunday of 2026-W53
        (date(2027, 1, 1), date(2026, 12, 28), date(2026, 12, 27)),
    ],
)
def test_week_start(day: date, monday: date, sunday: date) -> None:
    assert week_start_of(day, WeekStart.MONDAY) == monday
    assert week_start_of(day, WeekStart.SUNDAY) == sunday


def test_monday_weeks_are_iso_weeks_for_a_whole_year_with_53() -> None:
    for offset in range(375):
        day = date(2026, 1, 1) + timedelta(days=offset)
        start = week_start_of(day, WeekStart.MONDAY)
        assert start.isocalendar()[:2] == day.isocalendar()[:2]
        assert start.isoweekday() == 1
    assert date(2026, 12, 31).isocalendar()[1] == 53


def test_period_names() -> None:
    assert Period(Grain.DAY, date(2026, 11, 26)).name == "2026-11-26"
    assert Period(Grain.WEEK, date(2026, 11, 23)).name == "2026-11-23"
    assert Period(Grain.MONTH, date(2026, 11, 1)).name == "2026-11"
    assert TOTAL.name == "total" and TOTAL.start_text is None


def test_a_hit_adds_to_its_day_week_month_and_total() -> None:
    day, week, month, total = periods_of_hit(date(2026, 12, 31), WeekStart.MONDAY)
    assert (day.start, week.start, month.start) == (
        date(2026, 12, 31),
        date(2026, 12, 28),
        date(2026, 12, 1),
    )
    assert total is TOTAL


def test_windows_at_the_first_of_january() -> None:
    windows = windows_at(date(2027, 1, 1), WeekStart.MONDAY)
    assert list(windows) == list(WINDOWS)
    assert {name: p.start_text for name, p in windows.items()} == {
        "today": "2027-01-01",
        "yesterday": "2026-12-31",
        "this_week": "2026-12-28",
        "last_week": "2026-12-21",
        "this_month": "2027-01-01",
        "last_month": "2026-12-01",
        "total": None,
    }


def test_last_month_of_march_in_a_leap_year() -> None:
    windows = windows_at(date(2028, 3, 31), WeekStart.SUNDAY)
    assert windows["last_month"].start == date(2028, 2, 1)
    assert windows["yesterday"].start == date(2028, 3, 30)
