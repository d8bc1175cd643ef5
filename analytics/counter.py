"""The counting rules: a hit in, an outcome out; and the counters document of a site."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from analytics import filters
from analytics.clock import Clock, epoch_ms
from analytics.errors import StoreUnavailable
from analytics.identity import Salts, network_id, page_id, visitor_id
from analytics.periods import WINDOWS, Period, local_date, periods_of_hit, windows_at
from analytics.sites import Offsets, Site, SiteRegistry


@dataclass(frozen=True)
class HitLimits:
    session_timeout_ms: int
    online_keep_ms: int
    reload_ms: int
    per_visitor: int
    per_network: int


@dataclass(frozen=True)
class WindowCounts:
    pageviews: int
    visits: int
    visitors: int


class Outcome(StrEnum):
    COUNTED = "counted"
    HEARTBEAT = "heartbeat"
    BOT = "bot"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    ORIGIN_REJECTED = "origin_rejected"
    OPTED_OUT = "opted_out"
    INVALID = "invalid"
    UNKNOWN_SITE = "unknown_site"
    STORE_UNAVAILABLE = "store_unavailable"


class Kind(StrEnum):
    PAGEVIEW = "pageview"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Hit:
    """One validated beacon, with what the request said about its sender."""

    site_id: str
    url: str
    kind: Kind
    client_ip: str
    user_agent: str
    origin: str | None = None
    referer: str | None = None
    sec_gpc: str | None = None


@dataclass(frozen=True)
class Policy:
    """Service-wide limits of the counting rules."""

    per_visitor_per_minute: int = 300
    per_network_per_minute: int = 1200
    reload_seconds: int = 10
    read_cache_seconds: float = 1.0


class HitStore(Protocol):
    def record_hit(
        self,
        site_id: str,
        periods: Any,
        *,
        kind: str,
        visitor: str,
        network: str,
        page: str,
        now_ms: int,
        limits: HitLimits,
    ) -> str: ...

    def read_windows(
        self, site_id: str, windows: Any, online_since_ms: int
    ) -> tuple[int, list[WindowCounts]]: ...


class Counter:
    def __init__(
        self,
        store: HitStore,
        sites: SiteRegistry,
        salts: Salts,
        clock: Clock,
        policy: Policy | None = None,
    ) -> None:
        self.store = store
        self.sites = sites
        self.salts = salts
        self.clock = clock
        self.policy = policy or Policy()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    def count(self, hit: Hit) -> Outcome:
        """Decides whether ``hit`` counts and, if it does, counts it in every window.

        Raises UnknownSite for an unregistered site and StoreUnavailable when Redis is down.
        """
        site = self.sites.get(hit.site_id)
        if not filters.origin_allowed(site.origins, hit.origin, hit.referer):
            return Outcome.ORIGIN_REJECTED
        if filters.is_bot(hit.user_agent):
            return Outcome.BOT
        if filters.opted_out(site.honor_gpc, hit.sec_gpc):
            return Outcome.OPTED_OUT
        now = self.clock()
        day = local_date(now, site.zone)
        salt = self.salts.for_day(day)
        result = self.store.record_hit(
            site.id,
            periods_of_hit(day, site.week_start) if hit.kind is Kind.PAGEVIEW else (),
            kind=str(hit.kind),
            visitor=visitor_id(salt, site.id, hit.client_ip, hit.user_agent),
            network=network_id(salt, site.id, hit.client_ip),
            page=page_id(hit.url),
            now_ms=epoch_ms(now),
            limits=self._limits(site),
        )
        return Outcome(result)

    def _limits(self, site: Site) -> HitLimits:
        p = self.policy
        return HitLimits(
            session_timeout_ms=site.session_timeout_seconds * 1000,
            online_keep_ms=max(site.session_timeout_seconds, site.online_window_seconds) * 1000,
            reload_ms=p.reload_seconds * 1000,
            per_visitor=p.per_visitor_per_minute,
            per_network=p.per_network_per_minute,
        )

    def counters(self, site_id: str, *, fresh: bool = False) -> dict[str, Any]:
        """The counters document of API.md, from a cache at most ``read_cache_seconds`` old.

        While Redis is unavailable, the last document read is answered with ``"stale": true``.
        """
        now = self.clock()
        stamp = now.timestamp()
        with self._cache_lock:
            cached = self._cache.get(site_id)
        if (
            not fresh
            and cached is not None
            and 0 <= stamp - cached[0] < self.policy.read_cache_seconds
        ):
            return cached[1]
        try:
            site = self.sites.get(site_id)
            doc = self._read(site, now)
        except StoreUnavailable:
            if cached is None:
                raise
            # Better the last known numbers, marked as such, than an empty box.
            return {**cached[1], "stale": True}
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[site_id] = (stamp, doc)
        return doc

    def forget(self, site_id: str) -> None:
        """Drops this process's cached document of a site, after an admin changed its counts.

        Other processes' caches expire by themselves, within ``read_cache_seconds``.
        """
        with self._cache_lock:
            self._cache.pop(site_id, None)

    def _read(self, site: Site, now: Any) -> dict[str, Any]:
        day = local_date(now, site.zone)
        windows = windows_at(day, site.week_start)
        periods: list[Period] = [windows[name] for name in WINDOWS]
        since = now - timedelta(seconds=site.online_window_seconds)
        online, counts = self.store.read_windows(site.id, periods, epoch_ms(since))
        doc_windows: dict[str, Any] = {}
        for name, period, c in zip(WINDOWS, periods, counts, strict=True):
            extra = site.offsets if name == "total" else Offsets()
            doc_windows[name] = {
                "start": period.start_text,
                "pageviews": c.pageviews + extra.pageviews,
                "visits": c.visits + extra.visits,
                "visitors": c.visitors + extra.visitors,
            }
        return {
            "site": site.id,
            "timezone": site.timezone,
            "as_of": now.astimezone(site.zone).isoformat(timespec="seconds"),
            "box_metric": site.box_metric,
            "online": online,
            "windows": doc_windows,
        }
