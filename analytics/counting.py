"""Where a hit is counted: a validated beacon in, an outcome out (the write path)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from analytics import filters
from analytics.clock import Clock, epoch_ms
from analytics.identity import Salts, network_id, page_id, visitor_id
from analytics.periods import local_date, periods_of_hit
from analytics.sites import Site, SiteRegistry
from analytics.store import CountStore, HitLimits


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


class Counting:
    def __init__(
        self,
        store: CountStore,
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

    def count(self, hit: Hit) -> Outcome:
        """Decides whether ``hit`` counts and, if it does, counts it in every window.

        Bots, origins and opt-outs are decided here; reloads and rates need shared state, so
        the hit script decides those in the same atomic call that counts. Raises UnknownSite
        for an unregistered site and StoreUnavailable when Redis is down.
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
            online_keep_ms=site.online_keep_seconds * 1000,
            reload_ms=p.reload_seconds * 1000,
            per_visitor=p.per_visitor_per_minute,
            per_network=p.per_network_per_minute,
        )
