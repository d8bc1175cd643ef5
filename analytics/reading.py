"""Where counters are read: the counters document of a site, typed, and its short cache (the
read path)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, TypeVar, cast

from analytics.clock import Clock, epoch_ms
from analytics.errors import StoreUnavailable
from analytics.periods import WINDOWS, Period, end_of, local_date, windows_at
from analytics.sites import METRICS, Offsets, Site, SiteRegistry
from analytics.store import CountStore

T = TypeVar("T")
_MISSING = object()
MAX_RENDERED = 32
"""Renderings kept per document: the options a site's pages use, not every query a client
can make up."""

ONLINE = "online"
"""The row of the box, and the value of the widget, that is no window but the online count."""


@dataclass(frozen=True)
class Window:
    """One window's counts; ``start`` is its first local day, None for the total."""

    start: str | None
    pageviews: int
    visits: int
    visitors: int

    def metric(self, name: str) -> int:
        if name not in METRICS:
            raise KeyError(name)
        value: int = getattr(self, name)
        return value


@dataclass(frozen=True)
class Counters:
    """The counters document of a site: the online count and every window, as of one instant."""

    site: str
    timezone: str
    as_of: str
    box_metric: str
    online: int
    windows: Mapping[str, Window] = field(default_factory=dict)
    stale: bool = False
    """True when Redis is away and these are the last numbers read."""

    def value(self, row: str, metric: str) -> int:
        """The online count (row ``online``), or one metric of one window."""
        return self.online if row == ONLINE else self.windows[row].metric(metric)

    @cached_property
    def json_bytes(self) -> bytes:
        """The document as the API answers it, serialised once however often it is read."""
        text = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8") + b"\n"

    def rendered(self, key: Hashable, render: Callable[[], T]) -> T:
        """``render()``'s result for this document, made once per ``key`` (a box or a badge of
        given options); a bounded number of keys is kept, the rest rendered each time."""
        found = self._rendered.get(key, _MISSING)
        if found is _MISSING:
            found = render()
            if len(self._rendered) < MAX_RENDERED:
                self._rendered[key] = found
        return cast(T, found)

    @cached_property
    def _rendered(self) -> dict[Hashable, object]:
        return {}

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "site": self.site,
            "timezone": self.timezone,
            "as_of": self.as_of,
            "box_metric": self.box_metric,
            "online": self.online,
            "windows": {
                name: {
                    "start": w.start,
                    "pageviews": w.pageviews,
                    "visits": w.visits,
                    "visitors": w.visitors,
                }
                for name, w in self.windows.items()
            },
        }
        if self.stale:
            doc["stale"] = True
        return doc


class Reading:
    def __init__(
        self,
        store: CountStore,
        sites: SiteRegistry,
        clock: Clock,
        cache_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.sites = sites
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Counters]] = {}
        self._cache_lock = threading.Lock()

    def counters(self, site_id: str, *, fresh: bool = False) -> Counters:
        """The counters of a site, from a cache at most ``cache_seconds`` old.

        While Redis is unavailable, the last document read is answered, marked ``stale``.
        """
        now = self.clock()
        stamp = now.timestamp()
        with self._cache_lock:
            cached = self._cache.get(site_id)
        if not fresh and cached is not None and 0 <= stamp - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            site = self.sites.get(site_id)
            doc = self._read(site, now)
        except StoreUnavailable:
            if cached is None:
                raise
            # Better the last known numbers, marked as such, than an empty box.
            return replace(cached[1], stale=True)
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[site_id] = (stamp, doc)
        return doc

    def forget(self, site_id: str) -> None:
        """Drops this process's cached document of a site, after an admin changed its counts.

        Other processes' caches expire by themselves, within ``cache_seconds``.
        """
        with self._cache_lock:
            self._cache.pop(site_id, None)

    def _read(self, site: Site, now: datetime) -> Counters:
        day = local_date(now, site.zone)
        by_name = windows_at(day, site.week_start)
        periods: list[Period] = [by_name[name] for name in WINDOWS]
        since = now - timedelta(seconds=site.online_window_seconds)
        online, counts = self.store.read_windows(
            site.id, periods, epoch_ms(since), [days_of(p) for p in periods]
        )
        windows: dict[str, Window] = {}
        for name, period, c in zip(WINDOWS, periods, counts, strict=True):
            extra = site.offsets if name == "total" else Offsets()
            windows[name] = Window(
                start=period.start_text,
                pageviews=c.pageviews + extra.pageviews,
                visits=c.visits + extra.visits,
                visitors=c.visitors + extra.visitors,
            )
        return Counters(
            site=site.id,
            timezone=site.timezone,
            as_of=now.astimezone(site.zone).isoformat(timespec="seconds"),
            box_metric=site.box_metric,
            online=online,
            windows=windows,
        )


def days_of(period: Period) -> list[str] | None:
    """The dates ``period`` covers, whose imported counts it adds; None for the total, which adds
    the sums of every imported day. (Read each time: a site's week start can change.)"""
    if period.start is None:
        return None
    days = (end_of(period) - period.start).days
    return [(period.start + timedelta(days=n)).isoformat() for n in range(days)]
