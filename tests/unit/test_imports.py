"""Telling an export by day from one by month or by week, by its dates alone."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from analytics.errors import InvalidInput
from analytics.imports import ImportedDay, check_daily, coarser_interval


def dates(*texts: str) -> list[date]:
    return [date.fromisoformat(t) for t in texts]


def run(first: str, count: int, step: int) -> list[date]:
    start = date.fromisoformat(first)
    return [start + timedelta(days=n * step) for n in range(count)]


CASES: list[tuple[str, list[date], str | None]] = [
    ("empty", [], None),
    ("one-day", dates("2024-03-01"), None),
    ("daily", run("2024-01-25", 40, 1), None),
    ("a-last-day-and-a-first", dates("2024-01-31", "2024-02-01"), None),
    ("two-days-apart", dates("2024-01-10", "2024-01-12", "2024-01-20"), None),
    ("two-days-around-a-first", dates("2024-01-15", "2024-02-01"), None),
    ("monthly", dates("2024-03-01", "2024-04-01", "2024-05-01"), "month"),
    ("two-months", dates("2024-12-01", "2025-01-01"), "month"),
    ("monthly-unsorted", dates("2025-01-01", "2024-11-01", "2024-12-01"), "month"),
    ("monthly-from-mid-month", dates("2024-01-15", "2024-02-01", "2024-03-01"), "month"),
    ("monthly-from-a-last-day", dates("2024-01-31", "2024-02-01", "2024-03-01"), "month"),
    ("monthly-with-a-month-missing", dates("2024-01-01", "2024-02-01", "2024-04-01"), "month"),
    ("weekly", run("2024-02-05", 10, 7), "week"),
    ("two-weeks", run("2024-02-05", 2, 7), "week"),
    ("weekly-from-mid-week", [date(2024, 2, 1), *run("2024-02-05", 4, 7)], "week"),
    ("weekly-from-sunday", [date(2024, 2, 4), *run("2024-02-05", 4, 7)], "week"),
    ("one-gap-of-a-week", dates("2024-02-01", "2024-02-05"), None),
    ("weekly-then-daily", [*run("2024-02-05", 3, 7), date(2024, 2, 20)], None),
    ("every-other-week", run("2024-02-05", 4, 14), None),
]


@pytest.mark.parametrize(("days", "found"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_coarser_interval(days: list[date], found: str | None) -> None:
    assert coarser_interval(days) == found


def test_check_daily_refuses_months_and_weeks_and_takes_days() -> None:
    check_daily([ImportedDay(d, 1) for d in run("2024-01-25", 40, 1)])
    with pytest.raises(InvalidInput, match="one row a month") as month:
        check_daily([ImportedDay(d, 1) for d in dates("2024-03-01", "2024-04-01")])
    assert month.value.field == "file"
    with pytest.raises(InvalidInput, match="one row a week"):
        check_daily([ImportedDay(d, 1) for d in run("2024-02-05", 3, 7)])
