"""The beacon, POST /api/v1/hit and GET /api/v1/hit.gif: bounds the input, then counts it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from analytics.counting import Hit, Kind, Outcome
from analytics.errors import (
    AnalyticsError,
    InvalidInput,
    PayloadTooLarge,
    StoreUnavailable,
    UnknownSite,
)
from analytics.services import Services
from analytics.sites import valid_site_id

MAX_BODY = 8 * 1024
MAX_URL = 2048
CONTENT_TYPES = ("text/plain", "application/json")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = "no-store, no-cache, must-revalidate, max-age=0"


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def _has_space(text: str) -> bool:
    return any(c.isspace() for c in text)


def _text(data: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"'{name}' is required", field=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string", field=name)
    if len(value) > MAX_URL:
        raise InvalidInput(f"'{name}' is longer than {MAX_URL} characters", field=name)
    if _has_control(value):
        raise InvalidInput(f"'{name}' holds control characters", field=name)
    return value


def parse_hit_fields(data: Any) -> tuple[str, str, Kind]:
    """The site, page URL and kind of a beacon body; InvalidInput naming the first bad field."""
    if not isinstance(data, Mapping):
        raise InvalidInput("the body must be a JSON object")
    site = data.get("site")
    if site is None:
        raise InvalidInput("'site' is required", field="site")
    if not valid_site_id(site):
        raise InvalidInput("'site' is not a valid site id", field="site")
    url = _text(data, "url", required=True)
    assert url is not None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("'url' is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or _has_space(url):
        raise InvalidInput("'url' must be an absolute http or https URL", field="url")
    _text(data, "referrer", required=False)
    kind = data.get("type")
    if kind is None:
        kind = Kind.PAGEVIEW.value
    if kind not in (Kind.PAGEVIEW.value, Kind.HEARTBEAT.value):
        raise InvalidInput("'type' must be 'pageview' or 'heartbeat'", field="type")
    return str(site), url, Kind(kind)


def _not_json(name: str) -> Any:
    """NaN, Infinity and -Infinity, which Python's json accepts and JSON does not."""
    raise ValueError(f"{name} is not JSON")


def _read_json_body() -> Any:
    mimetype = request.mimetype
    if mimetype not in CONTENT_TYPES:
        raise InvalidInput(
            "send the hit as text/plain or application/json", code="unsupported_content_type"
        )
    # One byte over the limit, so that a streamed (chunked) body over 8 KiB is seen, not cut.
    request.max_content_length = MAX_BODY + 1
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        body = b"x" * (MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from None


def _cors(response: Response) -> Response:
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = NO_CACHE
    return response


def blueprint(svc: Services) -> Blueprint:
    """The beacon routes over ``svc``: the hit, its preflight and the pixel."""
    bp = Blueprint("beacon", __name__)

    def _count(data: Any) -> Outcome:
        """Counts one hit, recording its outcome in the metrics whatever happens."""
        try:
            site_id, url, kind = parse_hit_fields(data)
            outcome = svc.counting.count(
                Hit(
                    site_id=site_id,
                    url=url,
                    kind=kind,
                    client_ip=request.remote_addr or "",
                    user_agent=request.user_agent.string,
                    origin=request.headers.get("Origin"),
                    referer=request.headers.get("Referer"),
                    sec_gpc=request.headers.get("Sec-GPC"),
                )
            )
        except UnknownSite:
            svc.metrics.hit(Outcome.UNKNOWN_SITE)
            raise
        except StoreUnavailable:
            svc.metrics.hit(Outcome.STORE_UNAVAILABLE)
            raise
        except AnalyticsError:
            svc.metrics.hit(Outcome.INVALID)
            raise
        svc.metrics.hit(outcome)
        return outcome

    @bp.post("/api/v1/hit", provide_automatic_options=False)
    def hit() -> Response:
        try:
            data = _read_json_body()
        except AnalyticsError:
            svc.metrics.hit(Outcome.INVALID)
            raise
        _count(data)
        return _cors(Response(status=204))

    @bp.route("/api/v1/hit", methods=["OPTIONS"], provide_automatic_options=False)
    def hit_preflight() -> Response:
        response = _cors(Response(status=204))
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "86400"
        return response

    @bp.get("/api/v1/hit.gif")
    def hit_gif() -> Response:
        if request.method != "HEAD":  # a HEAD asks about the pixel, it is no page view
            _count(request.args.to_dict(flat=True))
        response = _cors(Response(PIXEL, mimetype="image/gif"))
        response.headers["Pragma"] = "no-cache"
        response.headers["Expires"] = "0"
        return response

    return bp
