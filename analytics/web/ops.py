"""Operations: liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from analytics.services import services
from analytics.web.errors import error_response

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    if services().store.ping():
        return jsonify({"status": "ready"})
    response = error_response(503, "store_unavailable", "Redis does not answer")
    response.headers["Retry-After"] = "5"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    return services().metrics.exposition()
