"""The daily history of a site: frozen counts of closed days, live counts of the others, and
the days imported from an earlier counter added to both."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from analytics.clock import Clock, epoch_ms
from analytics.errors import InvalidInput
from analytics.periods import Grain, Period, local_date
from analytics.sites import SiteRegistry
from analytics.store import Store, WindowCounts

MAX_DAYS = 366
LIVE_READ_DAYS = 366
"""Days whose live counts one read fetches at most (a longer history takes several)."""
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_range(first: str | None, last: str | None) -> tuple[date, date]:
    """``from`` and ``to`` as dates: both given, ``YYYY-MM-DD``, in order, at most 366 days."""
    days: list[date] = []
    for name, text in (("from", first), ("to", last)):
        if not text:
            raise InvalidInput(f"'{name}' is required (YYYY-MM-DD)", field=name)
        try:
            if not DAY.fullmatch(text):
                raise ValueError
            days.append(date.fromisoformat(text))
        except ValueError:
            raise InvalidInput(f"'{name}' must be a date YYYY-MM-DD", field=name) from None
    start, end = days
    if end < start:
        raise InvalidInput("'to' is before 'from'", field="to")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput(f"'from' to 'to' spans more than {MAX_DAYS} days", field="to")
    return start, end


class History:
    def __init__(
        self, store: Store, sites: SiteRegistry, clock: Clock, retention_days: int = 62
    ) -> None:
        self.store = store
        self.sites = sites
        self.clock = clock
        self.retention_days = retention_days
        """How long live day keys stay: closing, once it begins, begins this far back."""

    def days(self, site_id: str, first: date, last: date) -> list[dict[str, Any]]:
        """One entry per local day from ``first`` to ``last``, zeros included, today live."""
        site = self.sites.get(site_id)
        dates = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        periods = [Period(Grain.DAY, day) for day in dates]
        counts = self.store.history.frozen(site.id, periods)
        live = [p for p in periods if p not in counts]
        for at in range(0, len(live), LIVE_READ_DAYS):
            chunk = live[at : at + LIVE_READ_DAYS]
            _, values = self.store.counts.read_windows(site.id, chunk, epoch_ms(self.clock()))
            counts.update(zip(chunk, values, strict=True))
        imported = self.store.history.imported(site.id, dates)
        none = WindowCounts(0, 0, 0)
        days = []
        for day, p in zip(dates, periods, strict=True):
            own, extra = counts[p], imported.get(day, none)
            days.append(
                {
                    "date": p.start_text,
                    "pageviews": own.pageviews + extra.pageviews,
                    "visits": own.visits + extra.visits,
                    "visitors": own.visitors + extra.visitors,
                }
            )
        return days

    def all_days(self, site_id: str) -> list[dict[str, Any]]:
        """Every day there is: from the site's first day with any count, imported, frozen or
        live, to today (today alone for a site that never counted)."""
        site = self.sites.get(site_id)
        today = local_date(self.clock(), site.zone)
        known = self.store.history.first_known_day(site.id)
        # A day with counts was imported, or closed (closing begins the retention before its
        # first run), or is live still within the retention; leading empty days are dropped.
        first = min(known or today, today - timedelta(days=self.retention_days))
        days = self.days(site.id, first, today)
        metrics = ("pageviews", "visits", "visitors")
        start = next((n for n, d in enumerate(days) if any(d[m] for m in metrics)), len(days) - 1)
        return days[start:]
