"""Closed periods in Redis: where closing has reached, the close itself (counts frozen into the
daily, weekly and monthly history), and the frozen counts read back; and the days imported from
an earlier counter, kept apart from them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from analytics.periods import Grain, Period, WeekStart
from analytics.store.connection import Connection, text
from analytics.store.counts import WindowCounts, period_keys

LISTS_KEPT_MS = {
    Grain.DAY: 2 * 86_400_000,
    Grain.WEEK: 8 * 86_400_000,
    Grain.MONTH: 32 * 86_400_000,
}
"""How long a closed period's pages and referrers lists stay: a little longer than it is
``yesterday``, ``last_week`` or ``last_month``; no window reads them after that."""


class HistoryStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._close = conn.script("close")
        self._import = conn.script("import")

    def last_closed(self, site_id: str) -> dict[str, str]:
        """Per grain (``d``, ``w``, ``m``) the last period closed, and ``<grain>:since``, the
        first one."""
        with self._conn.call("last_closed"):
            raw = self._conn.client.hgetall(self._conn.keys.closed(site_id))
        return {text(k): text(v) for k, v in raw.items()}

    def close_period(
        self,
        site_id: str,
        period: Period,
        expired: Period,
        keep: tuple[int, int] = (1000, 100),
        week_start: WeekStart = WeekStart.MONDAY,
    ) -> bool:
        """Freezes ``period`` into the history once, keeps the top ``keep`` (pages, referrers)
        of its lists, and drops ``expired``; True if it closed. A week is closed only while the
        week keys follow ``week_start``, the site's."""
        k = self._conn.keys
        counts, visitors = period_keys(self._conn, site_id, [period])
        keys = [
            k.closed(site_id),
            counts,
            visitors,
            k.history(site_id, period),
            *period_keys(self._conn, site_id, [expired]),
            k.pages(site_id, period),
            k.referrers(site_id, period),
            k.page_errors(site_id, period),
            k.pages(site_id, expired),
            k.referrers(site_id, expired),
            k.page_errors(site_id, expired),
        ]
        args: list[str | int] = [
            str(period.grain),
            period.name,
            expired.name,
            LISTS_KEPT_MS[period.grain],
            *keep,
            str(week_start),
        ]
        with self._conn.call("close_period"):
            return bool(self._close(keys=keys, args=args))

    def frozen(self, site_id: str, periods: Sequence[Period]) -> dict[Period, WindowCounts]:
        """The frozen counts of those ``periods`` that were closed with any traffic."""
        by_key: dict[str, list[Period]] = {}
        for period in periods:
            by_key.setdefault(self._conn.keys.history(site_id, period), []).append(period)
        with self._conn.call("frozen"):
            pipe = self._conn.client.pipeline(transaction=False)
            for key, members in by_key.items():
                pipe.hmget(key, [p.name for p in members])
            answers = pipe.execute()
        found: dict[Period, WindowCounts] = {}
        for members, values in zip(by_key.values(), answers, strict=True):
            for period, value in zip(members, values, strict=True):
                if value is not None:
                    pageviews, visits, visitors = (int(x) for x in text(value).split())
                    found[period] = WindowCounts(pageviews, visits, visitors)
        return found

    def import_days(self, site_id: str, days: Sequence[tuple[date, WindowCounts]]) -> int:
        """Replaces the imported counts of each of ``days``, atomically; returns how many."""
        args: list[str | int] = []
        for day, counts in days:
            args += [day.isoformat(), counts.pageviews, counts.visits, counts.visitors]
        keys = [self._conn.keys.imported_days(site_id), self._conn.keys.imported_total(site_id)]
        with self._conn.call("import_days"):
            return int(self._import(keys=keys, args=args))

    def imported(self, site_id: str, days: Sequence[date]) -> dict[date, WindowCounts]:
        """The imported counts of those ``days`` that have any."""
        if not days:
            return {}
        with self._conn.call("imported"):
            values = self._conn.client.hmget(
                self._conn.keys.imported_days(site_id), [d.isoformat() for d in days]
            )
        found: dict[date, WindowCounts] = {}
        for day, value in zip(days, values, strict=True):
            if value is not None:
                pageviews, visits, visitors = (int(x) for x in text(value).split())
                found[day] = WindowCounts(pageviews, visits, visitors)
        return found

    def first_known_day(self, site_id: str) -> date | None:
        """The earliest of the first day closed into the history and the earliest day ever
        imported, in one round trip; None when neither is."""
        with self._conn.call("imported"):
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.hget(self._conn.keys.closed(site_id), "d:since")
            pipe.hget(self._conn.keys.imported_total(site_id), "since")
            answers = pipe.execute()
        found = [date.fromisoformat(text(a)) for a in answers if a is not None]
        return min(found, default=None)
