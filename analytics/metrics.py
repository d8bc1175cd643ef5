"""Metric definitions, the request timing hooks, and the /metrics exposition."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import Counter as PromCounter

from analytics.counter import Outcome

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods named in labels; any other is "other", so a client cannot mint label values."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The service's metrics, registered on one registry (each test may bring its own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
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
            ["job"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "analytics_scheduler_job_duration_seconds",
            "How long each housekeeping job ran.",
            ["job"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.lock_contention = PromCounter(
            "analytics_scheduler_lock_contention",
            "Housekeeping runs skipped because another process held the job's lock.",
            ["job"],
            registry=self.registry,
        )
        for outcome in Outcome:
            self.hits.labels(outcome=str(outcome))

    def hit(self, outcome: Outcome) -> None:
        self.hits.labels(outcome=str(outcome)).inc()

    def redis_error(self, operation: str) -> None:
        self.redis_errors.labels(operation=operation).inc()

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
        return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)


def _start_timer() -> None:
    g.analytics_started = time.perf_counter()
