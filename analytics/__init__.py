"""visit-analytics: a self-hosted visit counter. ``create_app`` wires the pieces, nothing more."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry
from werkzeug.middleware.proxy_fix import ProxyFix

from analytics import logs, web
from analytics.clock import Clock, system_clock
from analytics.metrics import ScrapeTimeGauges, read_snapshot, site_gauges_on
from analytics.services import Services, build_services
from analytics.settings import Settings
from analytics.web import admin
from analytics.web.proxies import ForwardedForCheck

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
    services: Services | None = None,
) -> Flask:
    """The web application, wired to the Redis of ``settings`` (read from the environment if None),
    or over ``services`` already built (by `analytics serve`, whose scheduler shares them).

    Building the services registers the sites of the sites file (or the demo site). It runs no
    scheduler: `analytics serve` starts one beside it, `analytics scheduler` runs one alone.
    """
    if services is None:
        settings = settings if settings is not None else Settings.load()
        services = build_services(settings, clock=clock, registry=registry)
    settings = services.settings
    # No default /static route: each file is served by its own route, with its own headers.
    app = Flask(__name__, static_folder=None)
    # A path with doubled slashes is no route (404): werkzeug would otherwise redirect it to
    # an absolute URL built from the request's Host header.
    app.url_map.merge_slashes = False
    # No body a Flask route reads is larger than an admin request's: a form is never spooled to
    # a temporary file (werkzeug does so past 500 KB).
    app.config["MAX_CONTENT_LENGTH"] = admin.LARGEST_BODY_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logs.init_app(app)
    services.metrics.init_app(app)
    per_site = site_gauges_on(settings)
    max_sites = settings.metrics_max_sites if per_site else 0
    services.metrics.add_scrape_time(
        ScrapeTimeGauges(
            lambda: read_snapshot(services.store, services.reading, max_sites), per_site=per_site
        )
    )
    web.init_app(app, services)
    # Outermost, so that the beacon, which answers before Flask, sees the client's address.
    if settings.trusted_proxies:
        # Only the client address is taken from the proxies; nothing here uses host or scheme.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=0, x_host=0
        )
        app.wsgi_app = ForwardedForCheck(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxies, clock=clock
        )
    return app
