"""Metric definitions, the request timing hooks, and the /metrics exposition.

Under a server with several worker processes (`analytics serve`, `analytics web`),
``PROMETHEUS_MULTIPROC_DIR`` names a directory where every process writes its metrics; a
scrape of any worker then adds them all up (prometheus-client's multiprocess mode). The
per-site gauges are computed at scrape time, from Redis, by the process that answers the
scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from analytics.counting import Outcome
from analytics.errors import AnalyticsError
from analytics.reading import Reading
from analytics.settings import Settings
from analytics.store import OPERATIONS, Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SCRAPE_BUDGET_SECONDS = 2.0
"""How long a scrape may spend reading per-site figures: a slow Redis must not make the whole
scrape time out."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods named in labels; any other is "other", so a client cannot mint label values."""
REPLAY_OUTCOMES = (
    "counted",
    "heartbeat",
    "duplicate",
    "rate_limited",
    "unknown_site",
    "already_counted",
    "other",
)
"""What a hit replayed from the spool came to: the hit script's outcomes, and
``already_counted`` for a call Redis had counted before its answer was lost."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)


def multiprocess_dir() -> str | None:
    """The multiprocess directory when a multi-worker server prepared one, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def single_process() -> None:
    """Keeps this process's metrics to itself, whatever ``PROMETHEUS_MULTIPROC_DIR`` says.

    For the commands that are one process (`analytics serve`, `analytics scheduler`, ...):
    a variable meant for another server on the same host must neither crash them (a directory
    that does not exist) nor mix their counts into that server's. Metrics created from
    here on keep their values in memory.
    """
    if os.environ.pop(MULTIPROC_ENV, None) is not None:
        values.ValueClass = values.MutexValue


def share_between_processes(path: Path) -> None:
    """Writes this process's metrics, and those of the processes it starts from now on, to
    ``path``, where a scrape of any of them sums them all."""
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def forget_dead_processes(path: str) -> None:
    """Drops the live gauges of worker processes that have exited (a worker restarted after a
    crash leaves its files); their counters stay, for their counts are part of the total."""
    for pid in {name.rsplit("_", 1)[-1].removesuffix(".db") for name in os.listdir(path)}:
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's


@dataclass(frozen=True)
class SiteFigures:
    site: str
    online: int
    visits_today: int
    pageviews_today: int


@dataclass(frozen=True)
class Snapshot:
    """What a scrape reads from Redis: whether it answered, and the first sites' figures."""

    store_up: bool
    sites_registered: int
    sites: tuple[SiteFigures, ...]
    sites_skipped: int = 0


def read_snapshot(store: Store, reading: Reading, max_sites: int) -> Snapshot:
    """What /metrics reads from Redis at scrape time: readiness and the first sites' figures.

    At most ``max_sites`` sites (the first by id) get gauges, so labels stay bounded, and the
    reading stops after ``SCRAPE_BUDGET_SECONDS``: the sites left out are counted in
    ``sites_skipped``.
    """
    deadline = time.monotonic() + SCRAPE_BUDGET_SECONDS
    if not store.ping():
        return Snapshot(store_up=False, sites_registered=0, sites=())
    try:
        ids = store.sites.ids()
    except AnalyticsError:
        return Snapshot(store_up=False, sites_registered=0, sites=())
    figures: list[SiteFigures] = []
    wanted = ids[:max_sites]
    for n, site_id in enumerate(wanted):
        if time.monotonic() > deadline:
            return Snapshot(True, len(ids), tuple(figures), sites_skipped=len(wanted) - n)
        try:
            doc = reading.counters(site_id)
        except AnalyticsError:
            continue  # removed since, or Redis went away mid-scrape: its gauges are left out
        today = doc.windows["today"]
        figures.append(SiteFigures(site_id, doc.online, today.visits, today.pageviews))
    return Snapshot(store_up=True, sites_registered=len(ids), sites=tuple(figures))


def site_gauges_on(settings: Settings) -> bool:
    """Whether /metrics has the per-site gauges, which list site ids: as
    ``metrics_site_gauges`` says when it is set, else only when /metrics has its token."""
    if settings.metrics_site_gauges is not None:
        return settings.metrics_site_gauges
    return settings.metrics_token is not None


class ScrapeTimeGauges(Collector):
    """Gauges read from Redis when /metrics is scraped, whichever process answers it; without
    ``per_site``, none of the per-site families is listed at all."""

    def __init__(self, read: Callable[[], Snapshot], *, per_site: bool = True) -> None:
        self._read = read
        self._per_site = per_site

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._read()
        yield GaugeMetricFamily(
            "analytics_store_up",
            "1 when Redis answered this scrape, else 0 (readiness).",
            value=1 if snapshot.store_up else 0,
        )
        yield GaugeMetricFamily(
            "analytics_sites_registered", "Registered sites.", value=snapshot.sites_registered
        )
        yield GaugeMetricFamily(
            "analytics_sites_skipped",
            "Sites within the cap left out of this scrape: reading them took too long.",
            value=snapshot.sites_skipped,
        )
        if not self._per_site:
            return
        families = {
            "online": GaugeMetricFamily(
                "analytics_site_online",
                "Visitors seen within the site's online window.",
                labels=["site"],
            ),
            "visits_today": GaugeMetricFamily(
                "analytics_site_visits_today",
                "Visits so far today, in the site's timezone.",
                labels=["site"],
            ),
            "pageviews_today": GaugeMetricFamily(
                "analytics_site_pageviews_today",
                "Pageviews so far today, in the site's timezone.",
                labels=["site"],
            ),
        }
        for figures in snapshot.sites:
            for attr, family in families.items():
                family.add_metric([figures.site], getattr(figures, attr))
        yield from families.values()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class Metrics:
    """The service's metrics, registered on one registry (each test may bring its own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._scrape_time = CollectorRegistry(auto_describe=False)
        self.hits = PromCounter(
            "analytics_hits",
            "Beacon hits by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.requests = PromCounter(
            "analytics_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "analytics_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.redis_latency = Histogram(
            "analytics_redis_duration_seconds",
            "Round-trip time of a store operation (one or more Redis commands).",
            ["operation"],
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "analytics_spool_depth",
            "Hits waiting in this host's local spool for Redis to take writes.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.spool_bytes = Gauge(
            "analytics_spool_bytes",
            "Bytes the spool directory holds on disk.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.spool_max_bytes = Gauge(
            "analytics_spool_max_bytes",
            "How much the spool may hold (ANALYTICS_SPOOL_MAX_BYTES); past it hits are lost.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.spool_oldest_age = Gauge(
            "analytics_spool_oldest_age_seconds",
            "Age of the oldest hit waiting in the spool; 0 when it is empty.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.spool_replayed = PromCounter(
            "analytics_spool_replayed",
            "Spooled hits counted from the spool into Redis, by the outcome the count gave.",
            ["outcome"],
            registry=self.registry,
        )
        self.redis_errors = PromCounter(
            "analytics_redis_errors",
            "Redis calls that failed, by store operation.",
            ["operation"],
            registry=self.registry,
        )
        self.periods_closed = PromCounter(
            "analytics_periods_closed",
            "Finished periods frozen into the history, by grain.",
            ["grain"],
            registry=self.registry,
        )
        self.job_last_success = Gauge(
            "analytics_scheduler_last_success_timestamp_seconds",
            "When each housekeeping job last finished.",
            ["task"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.job_duration = Histogram(
            "analytics_scheduler_job_duration_seconds",
            "How long each housekeeping job ran.",
            ["task"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.lock_contention = PromCounter(
            "analytics_scheduler_lock_contention",
            "Housekeeping runs skipped because another process held the job's lock.",
            ["task"],
            registry=self.registry,
        )
        for outcome in Outcome:
            self.hits.labels(outcome=str(outcome))
        for replay_outcome in REPLAY_OUTCOMES:
            self.spool_replayed.labels(outcome=replay_outcome)
        # Every series exists from the start at 0, so that increase() sees a first error.
        for operation in OPERATIONS:
            self.redis_errors.labels(operation=operation)

    def hit(self, outcome: Outcome) -> None:
        self.hits.labels(outcome=str(outcome)).inc()

    def spool_state(self, depth: int, size: int, oldest_age_seconds: float) -> None:
        self.spool_depth.set(depth)
        self.spool_bytes.set(size)
        self.spool_oldest_age.set(oldest_age_seconds)

    def replayed(self, outcome: str, hits: int) -> None:
        self.spool_replayed.labels(outcome=outcome if outcome in REPLAY_OUTCOMES else "other").inc(
            hits
        )

    def redis_error(self, operation: str) -> None:
        self.redis_errors.labels(operation=operation).inc()

    def redis_call(self, operation: str, seconds: float) -> None:
        self.redis_latency.labels(operation=operation).observe(seconds)

    def add_scrape_time(self, collector: Collector) -> None:
        """Adds gauges computed when /metrics is scraped (never written to the shared files)."""
        self._scrape_time.register(collector)

    def init_app(self, app: Flask) -> None:
        app.before_request(_start_timer)
        app.after_request(self._observe)

    def _observe(self, response: Response) -> Response:
        started = g.pop("analytics_started", None)
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(route=route, method=method, status=str(response.status_code)).inc()
        if started is not None:
            self.latency.labels(route=route).observe(time.perf_counter() - started)
        return response

    def exposition(self) -> Response:
        return Response(self.text(), mimetype=CONTENT_TYPE_LATEST)

    def text(self) -> bytes:
        """Every process's metrics (in multiprocess mode) or this one's, then the gauges read
        from Redis now."""
        path = multiprocess_dir()
        if path is not None:
            forget_dead_processes(path)
            shared = CollectorRegistry()
            MultiProcessCollector(shared, path=path)  # type: ignore[no-untyped-call]
            own = generate_latest(shared)
        else:
            own = generate_latest(self.registry)
        return own + generate_latest(self._scrape_time)


def _start_timer() -> None:
    g.analytics_started = time.perf_counter()
