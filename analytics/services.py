"""Services: the wired objects of one process, shared by the web app and the command line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from prometheus_client import CollectorRegistry

from analytics.admin import Admin
from analytics.auth import Authenticator
from analytics.clock import Clock, system_clock
from analytics.counter import Counter, Policy
from analytics.errors import AnalyticsError, SettingsError
from analytics.history import History
from analytics.housekeeping import Retention
from analytics.identity import Salts
from analytics.keys import KeySpace
from analytics.metrics import Metrics, SiteFigures, Snapshot
from analytics.scheduler import Housekeeper, HousekeepingPolicy
from analytics.settings import Settings
from analytics.sites import SiteRegistry, seed_sites
from analytics.store import CounterStore, connect

EXTENSION = "analytics"
SCRAPE_BUDGET_SECONDS = 2.0


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: CounterStore
    sites: SiteRegistry
    counter: Counter
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
    store = CounterStore(
        connect(settings.redis_url),
        KeySpace(settings.key_prefix),
        on_error=metrics.redis_error,
        on_duration=metrics.redis_call,
    )
    sites = SiteRegistry(store, settings.site_cache_seconds)
    if seed:
        seed_sites(sites, settings.sites_file)
    policy = Policy(
        per_visitor_per_minute=settings.rate_limit_visitor_per_minute,
        per_network_per_minute=settings.rate_limit_ip_per_minute,
        reload_seconds=settings.duplicate_window_seconds,
        read_cache_seconds=settings.read_cache_seconds,
    )
    housekeeping = HousekeepingPolicy(
        retention=Retention(settings.period_retention_days),
        grace=timedelta(seconds=settings.close_grace_seconds),
        interval_seconds=settings.housekeeping_interval_seconds,
    )
    counter = Counter(store, sites, Salts(store.salt, clock), clock, policy)
    return Services(
        settings=settings,
        store=store,
        sites=sites,
        counter=counter,
        history=History(store, sites, clock),
        housekeeper=Housekeeper(store, sites, clock, housekeeping, metrics),
        admin=Admin(store, sites, counter, clock),
        auth=Authenticator(store, clock),
        metrics=metrics,
        clock=clock,
    )


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def scrape_snapshot(svc: Services) -> Snapshot:
    """What /metrics reads from Redis at scrape time: readiness and the first sites' figures.

    At most ``metrics_max_sites`` sites (the first by id) get gauges, so labels stay bounded,
    and the reading stops after ``SCRAPE_BUDGET_SECONDS`` (a slow Redis must not make the
    whole scrape time out): the sites left out are counted in ``sites_skipped``.
    """
    deadline = time.monotonic() + SCRAPE_BUDGET_SECONDS
    if not svc.store.ping():
        return Snapshot(store_up=False, sites_registered=0, sites=())
    try:
        ids = svc.store.site_ids()
    except AnalyticsError:
        return Snapshot(store_up=False, sites_registered=0, sites=())
    figures: list[SiteFigures] = []
    wanted = ids[: svc.settings.metrics_max_sites]
    for n, site_id in enumerate(wanted):
        if time.monotonic() > deadline:
            return Snapshot(True, len(ids), tuple(figures), sites_skipped=len(wanted) - n)
        try:
            doc = svc.counter.counters(site_id)
        except AnalyticsError:
            continue  # removed since, or Redis went away mid-scrape: its gauges are left out
        today = doc["windows"]["today"]
        figures.append(
            SiteFigures(site_id, int(doc["online"]), int(today["visits"]), int(today["pageviews"]))
        )
    return Snapshot(store_up=True, sites_registered=len(ids), sites=tuple(figures))
