"""The daily history of a site: frozen counts of closed days, live counts of the others."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from analytics.clock import Clock, epoch_ms
from analytics.errors import InvalidInput
from analytics.periods import Grain, Period
from analytics.sites import SiteRegistry
from analytics.store import Store

MAX_DAYS = 366
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
    def __init__(self, store: Store, sites: SiteRegistry, clock: Clock) -> None:
        self.store = store
        self.sites = sites
        self.clock = clock

    def days(self, site_id: str, first: date, last: date) -> list[dict[str, Any]]:
        """One entry per local day from ``first`` to ``last``, zeros included, today live."""
        site = self.sites.get(site_id)
        periods = [
            Period(Grain.DAY, first + timedelta(days=i)) for i in range((last - first).days + 1)
        ]
        counts = self.store.history.frozen(site.id, periods)
        live = [p for p in periods if p not in counts]
        if live:
            _, values = self.store.counts.read_windows(site.id, live, epoch_ms(self.clock()))
            counts.update(zip(live, values, strict=True))
        return [
            {
                "date": p.start_text,
                "pageviews": counts[p].pageviews,
                "visits": counts[p].visits,
                "visitors": counts[p].visitors,
            }
            for p in periods
        ]
