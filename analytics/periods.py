"""Pure calendar maths: which day, week and month an instant falls in, in a site's timezone.

Periods are named by their first local day (``2026-11-26``, week ``2026-11-23``,
month ``2026-11``), so "today" rolls over at local midnight by construction and
nothing is ever reset. Weeks are named by their start date rather than an ISO
week number because a site may start its week on Sunday, which ISO numbering
does not describe; a Monday week's name is the date of its ISO week's Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Grain(StrEnum):
    DAY = "d"
    WEEK = "w"
    MONTH = "m"
    TOTAL = "t"


class WeekStart(StrEnum):
    MONDAY = "monday"
    SUNDAY = "sunday"


WINDOWS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "total")
"""Every window of the counters document, in the order the counters document lists them."""


@dataclass(frozen=True, order=True)
class Period:
    """One named period: a grain and its first local day (none for the total)."""

    grain: Grain
    start: date | None

    @property
    def name(self) -> str:
        """The period's name inside Redis keys."""
        if self.start is None:
            return "total"
        if self.grain is Grain.MONTH:
            return self.start.strftime("%Y-%m")
        return self.start.isoformat()

    @property
    def start_text(self) -> str | None:
        return None if self.start is None else self.start.isoformat()


TOTAL = Period(Grain.TOTAL, None)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(tz).date()


def week_start_of(day: date, week_start: WeekStart) -> date:
    # weekday(): Monday 0 .. Sunday 6
    back = day.weekday() if week_start is WeekStart.MONDAY else (day.weekday() + 1) % 7
    return day - timedelta(days=back)


def month_start_of(day: date) -> date:
    return day.replace(day=1)


def previous_month_start(day: date) -> date:
    return (month_start_of(day) - timedelta(days=1)).replace(day=1)


def periods_of_hit(day: date, week_start: WeekStart) -> tuple[Period, Period, Period, Period]:
    """The four periods a hit on local ``day`` adds to: its day, week, month, and the total."""
    return (
        Period(Grain.DAY, day),
        Period(Grain.WEEK, week_start_of(day, week_start)),
        Period(Grain.MONTH, month_start_of(day)),
        TOTAL,
    )


def windows_at(day: date, week_start: WeekStart) -> dict[str, Period]:
    """Every window seen from local ``day``, keyed by window name."""
    this_week = week_start_of(day, week_start)
    return {
        "today": Period(Grain.DAY, day),
        "yesterday": Period(Grain.DAY, day - timedelta(days=1)),
        "this_week": Period(Grain.WEEK, this_week),
        "last_week": Period(Grain.WEEK, this_week - timedelta(days=7)),
        "this_month": Period(Grain.MONTH, month_start_of(day)),
        "last_month": Period(Grain.MONTH, previous_month_start(day)),
        "total": TOTAL,
    }


def period_of(grain: Grain, day: date, week_start: WeekStart) -> Period:
    """The period of ``grain`` that local ``day`` falls in."""
    if grain is Grain.DAY:
        return Period(grain, day)
    if grain is Grain.WEEK:
        return Period(grain, week_start_of(day, week_start))
    if grain is Grain.MONTH:
        return Period(grain, month_start_of(day))
    return TOTAL


def end_of(period: Period) -> date:
    """The first local day after ``period``."""
    start = period.start
    if start is None:
        raise ValueError("the total never ends")
    if period.grain is Grain.DAY:
        return start + timedelta(days=1)
    if period.grain is Grain.WEEK:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


def months_before(start: date, count: int) -> date:
    index = start.year * 12 + start.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def from_name(grain: Grain, name: str) -> Period:
    """The period named ``name`` (the inverse of ``Period.name``)."""
    if grain is Grain.TOTAL:
        return TOTAL
    if grain is Grain.MONTH:
        return Period(grain, date.fromisoformat(name + "-01"))
    return Period(grain, date.fromisoformat(name))
