"""Operations: liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from analytics.services import services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    if services().store.ping():
        return jsonify({"status": "ready"})
    response = jsonify({"error": {"code": "store_unavailable", "message": "Redis does not answer"}})
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    return services().metrics.exposition()
