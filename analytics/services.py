"""Services: the wired objects one app instance uses, reachable from any view."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from analytics.clock import Clock
from analytics.counter import Counter
from analytics.metrics import Metrics
from analytics.settings import Settings
from analytics.sites import SiteRegistry
from analytics.store import CounterStore

EXTENSION = "analytics"


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: CounterStore
    sites: SiteRegistry
    counter: Counter
    metrics: Metrics
    clock: Clock


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found
