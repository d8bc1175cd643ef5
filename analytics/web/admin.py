"""The admin API: bearer-token guarded, audited, never cached, never cross-origin."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request

from analytics.admin import RESETTABLE, bad_windows
from analytics.audit import CLI_ACTOR, MAX_AUDIT_ENTRIES
from analytics.errors import Forbidden, InvalidInput, PayloadTooLarge
from analytics.imports import parse_days
from analytics.services import Services
from analytics.sites import Offsets, Site, SiteChanges, parse_offsets
from analytics.web.beacon import strict_json

MAX_BODY_BYTES = 64 * 1024
HISTORY_BODY_BYTES = 480 * 1024
"""A history import's body at most: 3660 days of large counts."""
LARGEST_BODY_BYTES = HISTORY_BODY_BYTES
HISTORY_PATH = re.compile(r"/api/v1/admin/sites/[^/]+/history")
T = TypeVar("T")


def body_limit(path: str) -> int:
    """The largest admin request body on ``path``."""
    return HISTORY_BODY_BYTES if HISTORY_PATH.fullmatch(path) else MAX_BODY_BYTES


def _client() -> str:
    """The client's address; never one the audit would take for the command line's actor
    (a forwarded address is whatever the proxy let through)."""
    client = request.remote_addr or ""
    return "web " + client if client.startswith(CLI_ACTOR) else client


def _json(limit: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, at most ``limit`` bytes: refused from its Content-Length, and
    a streamed (chunked) body cut one byte past the limit, so that it is seen to be over it."""
    too_large = PayloadTooLarge(f"an admin request body is at most {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_large
    request.max_content_length = limit + 1
    if len(request.get_data(cache=True)) > limit:
        raise too_large
    try:
        return strict_json(request.get_data(cache=True))
    except ValueError:  # not UTF-8, not JSON, NaN or Infinity, nested too deep
        raise InvalidInput("the body must be a JSON object") from None


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput("the body must be a JSON object")
    return data


def _windows(data: Any) -> list[str]:
    """The windows of a reset body: ``{"windows": [...]}``, ``["all"]`` meaning all four."""
    body = _object(data)
    for key in body:
        if key != "windows":
            raise InvalidInput(f"unknown field '{key}'", field=key)
    windows = body.get("windows")
    if windows == ["all"]:
        return list(RESETTABLE)
    if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
        raise bad_windows()
    return windows


def blueprint(svc: Services) -> Blueprint:
    """The admin API over ``svc``: every route behind the bearer token."""
    bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

    @bp.before_request
    def authenticate() -> None:
        """403 with admin off; else the token, throttled and audited (analytics.auth)."""
        expected = svc.settings.admin_token
        if expected is None:
            raise Forbidden("the admin API is off: set ANALYTICS_ADMIN_TOKEN to turn it on")
        svc.auth.require(
            request.headers.get("Authorization", ""), expected, client=_client(), path=request.path
        )

    @bp.after_request
    def never_cached(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    def _parsed(site_id: str, parse: Callable[[], T]) -> T:
        """``parse()``'s value; when the body is invalid, an unknown site is said first (404)."""
        try:
            return parse()
        except InvalidInput:
            svc.admin.get_site(site_id)
            raise

    @bp.get("/sites")
    def list_sites() -> Response:
        return jsonify({"sites": [site.to_dict() for site in svc.admin.list_sites()]})

    @bp.post("/sites")
    def create_site() -> tuple[Response, int]:
        site = Site.create(_object(_json()))
        return jsonify(svc.admin.create_site(site, _client()).to_dict()), 201

    @bp.get("/sites/<site_id>")
    def get_site(site_id: str) -> Response:
        return jsonify(svc.admin.get_site(site_id).to_dict())

    @bp.patch("/sites/<site_id>")
    def update_site(site_id: str) -> Response:
        body = _json()
        changes = _parsed(site_id, lambda: SiteChanges.parse(_object(body)))
        return jsonify(svc.admin.update_site(site_id, changes, _client()).to_dict())

    @bp.delete("/sites/<site_id>")
    def delete_site(site_id: str) -> Response:
        confirm = request.args.get("confirm")
        return jsonify(svc.admin.delete_site(site_id, confirm, _client()).to_json())

    @bp.put("/sites/<site_id>/offsets")
    def set_offsets(site_id: str) -> Response:
        body = _json()
        offsets: Offsets = _parsed(site_id, lambda: parse_offsets(_object(body)))
        return jsonify(svc.admin.set_offsets(site_id, offsets, _client()).to_dict())

    @bp.post("/sites/<site_id>/reset")
    def reset(site_id: str) -> Response:
        body = _json()
        windows = _parsed(site_id, lambda: _windows(body))
        return jsonify(svc.admin.reset(site_id, windows, _client()).to_json())

    @bp.post("/sites/<site_id>/resets/<reset_id>/undo")
    def undo(site_id: str, reset_id: str) -> Response:
        return jsonify(svc.admin.undo(site_id, reset_id, _client()).to_json())

    @bp.post("/sites/<site_id>/history")
    def import_history(site_id: str) -> Response:
        body = _json(HISTORY_BODY_BYTES)
        days = parse_days(body, svc.admin.today(site_id))
        return jsonify({"imported": svc.admin.import_history(site_id, days, _client())})

    @bp.get("/audit")
    def audit() -> Response:
        """The newest entries, newest first: 100, or ``?limit=`` up to the stream's cap."""
        raw = request.args.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT_ENTRIES:
            raise InvalidInput(
                f"'limit' must be a whole number from 1 to {MAX_AUDIT_ENTRIES}", field="limit"
            )
        return jsonify({"entries": [e.to_json() for e in svc.admin.audit(int(raw))]})

    return bp
