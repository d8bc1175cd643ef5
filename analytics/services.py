"""The composition root: the wired objects of one process, built from its settings, shared by
the web app, the scheduler and the command line."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from prometheus_client import CollectorRegistry

from analytics.admin import Admin, site_saved, site_saving
from analytics.audit import AuditLog
from analytics.auth import Authenticator
from analytics.clock import Clock, system_clock
from analytics.counting import Counting, Policy
from analytics.errors import SettingsError, StoreUnavailable
from analytics.history import History
from analytics.housekeeping import Housekeeper, HousekeepingPolicy, Retention
from analytics.identity import Salts
from analytics.metrics import Metrics
from analytics.pages import Pages
from analytics.reading import Reading
from analytics.settings import Settings
from analytics.sites import SiteRegistry, seed_sites
from analytics.store import KeySpace, Store, connect
from analytics.writer import HitWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    sites: SiteRegistry
    counting: Counting
    reading: Reading
    pages: Pages
    history: History
    housekeeper: Housekeeper
    admin: Admin
    auth: Authenticator
    metrics: Metrics
    clock: Clock


def build_services(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
    seed: bool = True,
) -> Services:
    """Connects to the Redis of ``settings`` and wires the rest; with ``seed``, registers the
    sites of the sites file (or the demo site), as the web service does at start."""
    if settings.redis_url is None:
        raise SettingsError(
            "ANALYTICS_REDIS_URL", "is unset; `analytics serve` starts an embedded Redis for you"
        )
    metrics = Metrics(registry)
    store = Store.over(
        connect(settings.redis_url),
        KeySpace(settings.key_prefix),
        on_error=metrics.redis_error,
        on_duration=metrics.redis_call,
    )
    sites = SiteRegistry(store.sites, settings.site_cache_seconds)
    if seed:
        try:
            seed_sites(
                sites,
                settings.sites_file,
                partial(site_saving, store),
                partial(site_saved, store, clock),
            )
        except StoreUnavailable:
            # A web worker started while Redis is away still answers (its health, and the
            # sites it learns of once Redis is back); the next start registers the sites.
            log.warning(
                "Redis is away: the sites were not registered at start",
                extra={"event": "seed_skipped"},
            )
    policy = Policy(
        window_minutes=settings.limit_window_minutes,
        new_visitors=settings.limit_new_visitors,
        visits=settings.limit_visits,
        pageviews=settings.limit_pageviews,
        heartbeats=settings.limit_heartbeats,
        reload_seconds=settings.duplicate_window_seconds,
        max_pages=settings.max_pages,
        max_referrers=settings.max_referrers,
    )
    housekeeping = HousekeepingPolicy(
        retention=Retention(settings.period_retention_days),
        grace=timedelta(seconds=settings.close_grace_seconds),
        interval_seconds=settings.housekeeping_interval_seconds,
        closed_lists=(max(100, settings.max_pages // 10), max(100, settings.max_referrers // 10)),
    )
    writer = HitWriter(
        store.counts,
        settings.data_dir / "spool",
        spool_max_bytes=settings.spool_max_bytes,
        clock=clock,
        observer=metrics,
    )
    metrics.spool_max_bytes.set(settings.spool_max_bytes)
    salts = Salts(store.salts.salt, clock)
    counting = Counting(store.counts, sites, salts, clock, policy, writer)
    reading = Reading(store.counts, sites, clock, settings.read_cache_seconds)
    audit = AuditLog(store.audit, clock, salts)
    return Services(
        settings=settings,
        store=store,
        sites=sites,
        counting=counting,
        reading=reading,
        pages=Pages(store.lists, sites, clock, settings.read_cache_seconds),
        history=History(store, sites, clock, settings.period_retention_days),
        housekeeper=Housekeeper(store, sites, clock, housekeeping, metrics),
        admin=Admin(
            store,
            sites,
            reading,
            audit,
            clock,
            list_caps=(settings.max_pages, settings.max_referrers),
        ),
        auth=Authenticator(store.audit, audit, clock),
        metrics=metrics,
        clock=clock,
    )
