"""The admin API: bearer-token guarded, audited, never cached, never cross-origin."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from analytics.admin import MAX_AUDIT_ENTRIES
from analytics.clock import epoch_ms
from analytics.errors import (
    Forbidden,
    InvalidInput,
    PayloadTooLarge,
    TooManyAttempts,
    Unauthorized,
)
from analytics.identity import network_of
from analytics.web.context import services

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

MAX_FAILURES_PER_MINUTE = 10
MAX_AUDITED_PATH = 200
MAX_BODY_BYTES = 64 * 1024


def _client() -> str:
    return request.remote_addr or ""


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(presented: str, expected: str) -> bool:
    """Constant time: compare_digest of the two SHA-256 digests takes as long wherever the
    first difference is, and whatever the presented token's length."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8")).digest(),
    )


@bp.before_request
def authenticate() -> None:
    """403 with admin off; 429 after too many failures from one network; 401 on a bad token."""
    svc = services()
    expected = svc.settings.admin_token
    if expected is None:
        raise Forbidden("the admin API is off: set ANALYTICS_ADMIN_TOKEN to turn it on")
    network = network_of(_client())
    minute = epoch_ms(svc.clock()) // 60_000
    if svc.store.audit.auth_failures(network, minute) >= MAX_FAILURES_PER_MINUTE:
        raise TooManyAttempts("too many failed authentications: try again in a minute")
    presented = _presented_token()
    if presented is None or not token_matches(presented, expected):
        svc.store.audit.count_auth_failure(network, minute)
        reason = "no token" if presented is None else "wrong token"
        # The path is the client's to choose: cut, so that an entry stays small.
        change = {"path": request.path[:MAX_AUDITED_PATH], "reason": reason}
        svc.admin.record("auth_failed", None, _client(), change)
        raise Unauthorized("a valid admin bearer token is required")


@bp.after_request
def never_cached(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _json() -> Any:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"an admin request body is at most {MAX_BODY_BYTES} bytes")
    request.max_content_length = MAX_BODY_BYTES  # a chunked body too
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise InvalidInput("the body must be a JSON object")
    return data


@bp.get("/sites")
def list_sites() -> Response:
    return jsonify({"sites": services().admin.list_sites()})


@bp.post("/sites")
def create_site() -> tuple[Response, int]:
    return jsonify(services().admin.create_site(_json(), _client())), 201


@bp.get("/sites/<site_id>")
def get_site(site_id: str) -> Response:
    return jsonify(services().admin.get_site(site_id))


@bp.patch("/sites/<site_id>")
def update_site(site_id: str) -> Response:
    return jsonify(services().admin.update_site(site_id, _json(), _client()))


@bp.delete("/sites/<site_id>")
def delete_site(site_id: str) -> Response:
    return jsonify(services().admin.delete_site(site_id, request.args.get("confirm"), _client()))


@bp.put("/sites/<site_id>/offsets")
def set_offsets(site_id: str) -> Response:
    return jsonify(services().admin.set_offsets(site_id, _json(), _client()))


@bp.post("/sites/<site_id>/reset")
def reset(site_id: str) -> Response:
    return jsonify(services().admin.reset(site_id, _json(), _client()))


@bp.post("/sites/<site_id>/resets/<reset_id>/undo")
def undo(site_id: str, reset_id: str) -> Response:
    return jsonify(services().admin.undo(site_id, reset_id, _client()))


@bp.get("/audit")
def audit() -> Response:
    """The newest entries, newest first: 100, or ``?limit=`` up to the stream's cap."""
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT_ENTRIES:
        raise InvalidInput(
            f"'limit' must be a whole number from 1 to {MAX_AUDIT_ENTRIES}", field="limit"
        )
    return jsonify({"entries": services().admin.audit(int(raw))})
