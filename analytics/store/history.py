"""Closed periods in Redis: where closing has reached, the close itself (counts frozen into the
daily, weekly and monthly history), and the frozen counts read back."""

from __future__ import annotations

from collections.abc import Sequence

from analytics.periods import Grain, Period
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

    def last_closed(self, site_id: str) -> dict[str, str]:
        """Per grain (``d``, ``w``, ``m``) the last period closed, and ``<grain>:since``, the
        first one."""
        with self._conn.call("last_closed"):
            raw = self._conn.client.hgetall(self._conn.keys.closed(site_id))
        return {text(k): text(v) for k, v in raw.items()}

    def close_period(
        self, site_id: str, period: Period, expired: Period, keep: tuple[int, int] = (1000, 100)
    ) -> bool:
        """Freezes ``period`` into the history once, keeps the top ``keep`` (pages, referrers)
        of its lists, and drops ``expired``; True if it closed."""
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
        ]
        args: list[str | int] = [
            str(period.grain),
            period.name,
            expired.name,
            LISTS_KEPT_MS[period.grain],
            *keep,
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
