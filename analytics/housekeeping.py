"""Which periods of a site have finished and may be closed, and which leave retention then.

Pure calendar decisions; the scheduler asks the store to act on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from analytics.periods import Grain, Period, WeekStart, end_of, from_name, months_before, period_of

GRAINS = (Grain.DAY, Grain.WEEK, Grain.MONTH)


@dataclass(frozen=True)
class Retention:
    """How long period keys stay after their period: long enough for every open window."""

    days: int = 62

    def retired_by(self, period: Period) -> Period:
        """The period of the same grain whose keys go when ``period`` is closed."""
        assert period.start is not None
        if period.grain is Grain.DAY:
            return Period(Grain.DAY, period.start - timedelta(days=self.days))
        if period.grain is Grain.WEEK:
            weeks = max(2, -(-self.days // 7))
            return Period(Grain.WEEK, period.start - timedelta(weeks=weeks))
        months = max(2, -(-self.days // 28))
        return Period(Grain.MONTH, months_before(period.start, months))


def due(
    grain: Grain,
    last_closed: str | None,
    today: date,
    week_start: WeekStart,
    first_day: date,
) -> list[Period]:
    """The periods of ``grain`` that ended before local ``today`` and are not closed, oldest first.

    With nothing closed yet, closing starts at the period of ``first_day``.
    """
    if last_closed is None:
        current = period_of(grain, first_day, week_start)
    else:
        current = period_of(grain, end_of(from_name(grain, last_closed)), week_start)
    periods: list[Period] = []
    while end_of(current) <= today:
        periods.append(current)
        current = period_of(grain, end_of(current), week_start)
    return periods
