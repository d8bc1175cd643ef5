"""Weeks in Redis after a site's week start changed: this week and last week built again from
their days, and the weeks of the old start closed and left to expire."""

from __future__ import annotations

from datetime import date, timedelta

from analytics.periods import Grain, Period, WeekStart, week_start_of
from analytics.store.connection import Connection
from analytics.store.counts import list_keys, period_keys

OLD_WEEKS = 10
"""How many weeks of the old start are closed and left to expire: as many as retention keeps
(62 days), and one more."""
OLD_WEEKS_KEPT_MS = 8 * 86_400_000
"""How long the old start's weeks stay: as long as a closed week's lists."""


def _days(first: date, count: int) -> list[Period]:
    return [Period(Grain.DAY, first + timedelta(days=i)) for i in range(count)]


class WeekStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rebuild = conn.script("weeks")

    def rebuild(self, site_id: str, today: date, old: WeekStart, new: WeekStart) -> tuple[int, int]:
        """Builds this week and last week by the ``new`` start again from their days (up to
        local ``today``); their pages and referrers lists are those of the weeks by the ``old``
        start they replace. Returns the two weeks' pageviews."""
        conn, keys = self._conn, self._conn.keys
        this_start = week_start_of(today, new)
        last_start = this_start - timedelta(days=7)
        old_start = week_start_of(today, old)
        this_days = _days(this_start, (today - this_start).days + 1)
        last_days = _days(last_start, 7)
        before_last = Period(Grain.WEEK, last_start - timedelta(days=7))
        args_keys = [keys.closed(site_id)]
        for start, days in ((this_start, this_days), (last_start, last_days)):
            week = Period(Grain.WEEK, start)
            replaced = Period(Grain.WEEK, old_start - (this_start - start))
            args_keys += period_keys(conn, site_id, [week]) + list_keys(conn, site_id, [week])
            args_keys += list_keys(conn, site_id, [replaced])
            args_keys += period_keys(conn, site_id, days)
        for back in range(OLD_WEEKS):
            week = Period(Grain.WEEK, old_start - timedelta(weeks=back))
            args_keys += period_keys(conn, site_id, [week]) + list_keys(conn, site_id, [week])
        args: list[str | int] = [
            len(this_days),
            len(last_days),
            OLD_WEEKS,
            before_last.name,
            OLD_WEEKS_KEPT_MS,
        ]
        with self._conn.call("rebuild_weeks"):
            this_week, last_week = self._rebuild(keys=args_keys, args=args)
        return int(this_week), int(last_week)
