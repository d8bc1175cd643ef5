"""The one place that turns every error into the JSON error document of the API."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from analytics.errors import AnalyticsError, StoreUnavailable, TooManyAttempts, Unauthorized

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """The JSON error of the API; ``field`` names the input at fault, where there is one."""
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    response = jsonify({"error": error})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _analytics_error(err: AnalyticsError) -> Response:
    response = error_response(err.status, err.code, err.message, err.field)
    if isinstance(err, StoreUnavailable):
        response.headers["Retry-After"] = "5"
    elif isinstance(err, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="visit-analytics"'
    elif isinstance(err, TooManyAttempts):
        response.headers["Retry-After"] = "60"
    elif err.status >= 500:
        log.error("store error: %s", err.message)
    return response


LEADING_SLASHES = re.compile(r"^[/\\]+")


def same_origin(url: str) -> str:
    """The path and query of ``url``: a Location that stays on the origin the client asked,
    whatever its Host header said (never ``//host/...``, which a browser would take for a
    host)."""
    parts = urlsplit(url)
    path = LEADING_SLASHES.sub("/", parts.path) or "/"
    return f"{path}?{parts.query}" if parts.query else path


def relative_location(response: Response) -> Response:
    """Every redirect of the app stays on the origin the client asked for. Routing's own (a
    missing trailing slash) name their URL absolutely, built from the Host header; they come
    here as they are, past the error handlers."""
    location = response.headers.get("Location")
    if location is not None:
        response.headers["Location"] = same_origin(location)
    return response


def _http_error(err: HTTPException) -> Response:
    status = err.code or 500
    response = error_response(
        status, _HTTP_CODES.get(status, "http_error"), err.description or err.name
    )
    for name, value in err.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _unexpected(err: Exception) -> Response:
    log.exception("unhandled error", exc_info=err)
    return error_response(500, "internal_error", "the service failed to answer this request")


def init_app(app: Flask) -> None:
    app.after_request(relative_location)
    app.register_error_handler(AnalyticsError, _analytics_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
