"""The services of the app that answers the current request."""

from __future__ import annotations

from flask import current_app

from analytics.services import Services

EXTENSION = "analytics"


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
