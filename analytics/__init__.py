"""visit-analytics: a self-hosted visit counter. ``create_app`` wires the pieces, nothing more."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.middleware.proxy_fix import ProxyFix

from analytics import web
from analytics.clock import Clock, system_clock
from analytics.counter import Counter, Policy
from analytics.errors import SettingsError
from analytics.identity import Salts
from analytics.keys import KeySpace
from analytics.metrics import Metrics
from analytics.services import EXTENSION, Services
from analytics.settings import Settings
from analytics.sites import SiteRegistry, seed_sites
from analytics.store import CounterStore, connect

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
) -> Flask:
    """The web application, wired to the Redis of ``settings`` (read from the environment if None).

    Registers the sites of the sites file (or the demo site) before it returns.
    """
    settings = settings if settings is not None else Settings.load()
    if settings.redis_url is None:
        raise SettingsError(
            "ANALYTICS_REDIS_URL", "is unset; `analytics serve` starts an embedded Redis for you"
        )
    metrics = Metrics(registry)
    store = CounterStore(
        connect(settings.redis_url), KeySpace(settings.key_prefix), on_error=metrics.redis_error
    )
    sites = SiteRegistry(store, settings.site_cache_seconds)
    seed_sites(sites, settings.sites_file)
    policy = Policy(
        per_visitor_per_minute=settings.rate_limit_visitor_per_minute,
        per_network_per_minute=settings.rate_limit_ip_per_minute,
        reload_seconds=settings.duplicate_window_seconds,
        read_cache_seconds=settings.read_cache_seconds,
    )
    counter = Counter(store, sites, Salts(store.salt, clock), clock, policy)

    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = Services(settings, store, sites, counter, metrics, clock)
    if settings.trusted_proxies:
        # Only the client address is taken from the proxies; nothing here uses host or scheme.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0
        )
    metrics.init_app(app)
    web.init_app(app)
    return app
