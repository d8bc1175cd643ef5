"""One blueprint per audience, and the handler that turns every error into the JSON error."""

from __future__ import annotations

from flask import Flask

from analytics.services import Services
from analytics.web import admin, admin_page, beacon, errors, home, ops, read, widget
from analytics.web.context import EXTENSION


def init_app(app: Flask, services: Services) -> None:
    app.extensions[EXTENSION] = services
    app.register_blueprint(beacon.bp)
    app.register_blueprint(read.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(widget.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_page.bp)
    app.register_blueprint(home.bp)
    errors.init_app(app)
