"""Operations: liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from analytics.auth import bearer_matches
from analytics.errors import STORE_UNAVAILABLE_MESSAGE
from analytics.services import Services
from analytics.web.errors import error_response


def blueprint(svc: Services) -> Blueprint:
    """The operations routes over ``svc``: liveness, readiness and metrics."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @bp.get("/readyz")
    def readyz() -> Response:
        if svc.store.takes_writes():
            return jsonify({"status": "ready"})
        response = error_response(503, "store_unavailable", STORE_UNAVAILABLE_MESSAGE)
        response.headers["Retry-After"] = "5"
        return response

    @bp.get("/metrics")
    def metrics() -> Response:
        """Every worker's metrics; behind ``ANALYTICS_METRICS_TOKEN`` (a bearer token) when set."""
        expected = svc.settings.metrics_token
        if expected is not None and not bearer_matches(
            request.headers.get("Authorization", ""), expected
        ):
            response = error_response(401, "unauthorized", "/metrics needs its bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        response = svc.metrics.exposition()
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp
