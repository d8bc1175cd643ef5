"""Where a hit is counted: a validated beacon in, an outcome out (the write path)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from analytics import filters
from analytics.clock import Clock, epoch_ms
from analytics.identity import Salts, network_id, page_id, visitor_id
from analytics.pages import host_of, page_path, referrer_host
from analytics.periods import local_date, periods_of_hit
from analytics.sites import Site, SiteRegistry
from analytics.store import CountStore, HitLimits
from analytics.writer import HitWriter


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
    SPOOLED = "spooled"
    """Answered 204 and kept in the spool: counted once Redis takes writes again."""
    LOST = "lost"
    """Answered 5xx: neither Redis nor the spool could take it."""


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
    """The request's ``Referer`` header (the page that sent the beacon)."""
    sec_gpc: str | None = None
    referrer: str | None = None
    """Where the reader came from: the beacon's ``referrer`` field."""


@dataclass(frozen=True)
class Policy:
    """Service-wide limits of the counting rules: what one network (an IPv4 address, an IPv6
    /64) may add to one site in any ``window_minutes``, and the reload window."""

    window_minutes: int = 10
    new_visitors: int = 60
    visits: int = 60
    pageviews: int = 600
    heartbeats: int = 600
    reload_seconds: int = 10
    max_pages: int = 10_000
    max_referrers: int = 1_000


class Counting:
    MAX_CACHED_DAYS = 10_000
    """Sites × days whose period keys are kept; past that the cache starts again."""
    MAX_CACHED_ORIGINS = 10_000
    """Origins lists whose hosts are kept; past that the cache starts again."""

    def __init__(
        self,
        store: CountStore,
        sites: SiteRegistry,
        salts: Salts,
        clock: Clock,
        policy: Policy | None = None,
        writer: HitWriter | None = None,
    ) -> None:
        self.store = store
        self.sites = sites
        self.salts = salts
        self.clock = clock
        self.policy = policy or Policy()
        self.writer = writer or HitWriter(store)
        # What a hit of a site on a local day adds to does not change during that day.
        self._day_keys: dict[tuple[str, date, str], tuple[str, ...]] = {}
        self._day_keys_lock = threading.Lock()
        # The hosts of a site's origins, its own beside the page's: worked out once per list.
        self._origin_hosts: dict[tuple[str, ...], frozenset[str]] = {}
        self._origin_hosts_lock = threading.Lock()

    def count(self, hit: Hit) -> Outcome:
        """Decides whether ``hit`` counts and, if it does, counts it in every window.

        Bots, origins and opt-outs are decided here; reloads and rates need shared state, so
        the hit script decides those in the same atomic call that counts. While Redis cannot
        take the hit, the writer keeps it in the spool (SPOOLED). Raises UnknownSite for an
        unregistered site, and StoreUnavailable (SpoolFull) when neither Redis nor the spool
        can take it.
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
        pageview = hit.kind is Kind.PAGEVIEW
        write = self.store.hit_write(
            site.id,
            self._period_keys(site, day) if pageview else (),
            kind=str(hit.kind),
            visitor=visitor_id(salt, site.id, hit.client_ip, hit.user_agent),
            network=network_id(salt, site.id, hit.client_ip),
            page=page_id(hit.url),
            now_ms=epoch_ms(now),
            limits=self._limits(site),
            network_before=self._network_before(site, now, day, hit.client_ip),
            path=page_path(hit.url) if pageview else "",
            referrer=self._referrer(site, hit) if pageview else "",
        )
        return Outcome(self.writer.write(write))

    def _referrer(self, site: Site, hit: Hit) -> str:
        origin_hosts = self._origin_hosts.get(site.origins)
        if origin_hosts is None:
            origin_hosts = frozenset(host_of(origin) for origin in site.origins)
            with self._origin_hosts_lock:
                if len(self._origin_hosts) >= self.MAX_CACHED_ORIGINS:
                    self._origin_hosts.clear()
                self._origin_hosts[site.origins] = origin_hosts
        own = origin_hosts | {host_of(hit.url)}
        return referrer_host(hit.referrer, own)

    def _network_before(self, site: Site, now: datetime, day: date, client_ip: str) -> str | None:
        """The network's id under the day before's salt while the limits' window still reaches
        into that day: its limits are not to start afresh at midnight."""
        local = now.astimezone(site.zone)
        if local.hour * 60 + local.minute > self.policy.window_minutes:
            return None
        return network_id(self.salts.for_day(day - timedelta(days=1)), site.id, client_ip)

    def _period_keys(self, site: Site, day: date) -> tuple[str, ...]:
        cache_key = (site.id, day, str(site.week_start))
        keys = self._day_keys.get(cache_key)
        if keys is None:
            keys = self.store.period_keys(site.id, periods_of_hit(day, site.week_start))
            with self._day_keys_lock:
                if len(self._day_keys) >= self.MAX_CACHED_DAYS:
                    self._day_keys.clear()
                self._day_keys[cache_key] = keys
        return keys

    def _limits(self, site: Site) -> HitLimits:
        p = self.policy
        return HitLimits(
            session_timeout_ms=site.session_timeout_seconds * 1000,
            online_keep_ms=site.online_keep_seconds * 1000,
            reload_ms=p.reload_seconds * 1000,
            window_minutes=p.window_minutes,
            new_visitors=p.new_visitors,
            visits=p.visits,
            pageviews=p.pageviews,
            heartbeats=p.heartbeats,
            online_window_ms=site.online_window_seconds * 1000,
            max_pages=p.max_pages,
            max_referrers=p.max_referrers,
        )
