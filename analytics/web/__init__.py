"""One blueprint per audience, and the handler that turns every error into the JSON error."""

from __future__ import annotations

from flask import Flask

from analytics.services import Services
from analytics.web import admin, admin_page, beacon, errors, home, ops, read, widget

EXTENSION = "analytics"


def init_app(app: Flask, services: Services) -> None:
    """Registers each blueprint with the services its routes use: no route looks them up."""
    app.extensions[EXTENSION] = services
    app.register_blueprint(read.blueprint(services))
    app.register_blueprint(ops.blueprint(services))
    app.register_blueprint(widget.blueprint(services))
    app.register_blueprint(admin.blueprint(services))
    app.register_blueprint(admin_page.bp)
    app.register_blueprint(home.bp)
    errors.init_app(app)
    # The beacon answers before Flask: the route of every page view skips its routing and hooks.
    app.wsgi_app = beacon.BeaconApp(services, app.wsgi_app)  # type: ignore[method-assign]
