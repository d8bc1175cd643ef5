"""The beacon, POST /api/v1/hit and GET /api/v1/hit.gif: a WSGI application of its own in front
of Flask, because it is the route every page view calls. It bounds the input, then counts it."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from analytics.counting import Hit, Kind, Outcome
from analytics.errors import (
    AnalyticsError,
    InvalidInput,
    PayloadTooLarge,
    StoreUnavailable,
    UnknownSite,
)
from analytics.logs import BEACON_REQUEST_ID, REQUEST_ID_HEADER, VALID_REQUEST_ID, new_request_id
from analytics.services import Services
from analytics.sites import valid_site_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

HIT_PATH = "/api/v1/hit"
GIF_PATH = "/api/v1/hit.gif"
ROUTES = frozenset({(HIT_PATH, "POST"), (HIT_PATH, "OPTIONS"), (GIF_PATH, "GET")})
"""The routes answered here rather than by Flask (HEAD of the pixel included in its GET)."""
MAX_BODY = 8 * 1024
MAX_URL = 2048
CONTENT_TYPES = ("text/plain", "application/json")
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = "no-store, no-cache, must-revalidate, max-age=0"
CORS = [("Access-Control-Allow-Origin", "*"), ("Cache-Control", NO_CACHE)]
PREFLIGHT = [
    ("Access-Control-Allow-Methods", "POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type"),
    ("Access-Control-Max-Age", "86400"),
]
GIF_HEADERS = [
    ("Content-Type", "image/gif"),
    ("Content-Length", str(len(PIXEL))),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
]
STATUS = {
    200: "200 OK",
    204: "204 No Content",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Request Entity Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
Answer = tuple[int, list[tuple[str, str]], bytes]


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SPACE = re.compile(r"\s")
r"""Whitespace as str.isspace() sees it (re's \s on str patterns is the same test)."""


def _has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


def _has_space(text: str) -> bool:
    return SPACE.search(text) is not None


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


def parse_hit_fields(data: Any) -> tuple[str, str, Kind, str | None]:
    """The site, page URL, kind and referrer of a beacon body; InvalidInput naming the first bad
    field."""
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
    referrer = _text(data, "referrer", required=False)
    kind = data.get("type")
    if kind is None:
        kind = Kind.PAGEVIEW.value
    if kind not in (Kind.PAGEVIEW.value, Kind.HEARTBEAT.value):
        raise InvalidInput("'type' must be 'pageview' or 'heartbeat'", field="type")
    return str(site), url, Kind(kind), referrer


def _not_json(name: str) -> Any:
    """NaN, Infinity and -Infinity, which Python's json accepts and JSON does not."""
    raise ValueError(f"{name} is not JSON")


def read_json_body(environ: WSGIEnvironment) -> Any:
    """The JSON body of a beacon: refused from its Content-Length when over ``MAX_BODY``, and
    a streamed (chunked) body cut one byte past it."""
    mimetype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if mimetype not in CONTENT_TYPES:
        raise InvalidInput(
            "send the hit as text/plain or application/json", code="unsupported_content_type"
        )
    try:
        # One byte over the limit, so that a streamed (chunked) body over it is seen, not cut.
        stream = get_input_stream(environ, max_content_length=MAX_BODY + 1)
        body = stream.read(MAX_BODY + 1)
    except RequestEntityTooLarge:
        body = b"x" * (MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
    try:
        return strict_json(body)
    except ValueError:
        raise InvalidInput("the body is not valid JSON", code="invalid_json") from None


def strict_json(body: bytes) -> Any:
    """``body`` as JSON, strictly: UTF-8, no NaN or Infinity; ValueError otherwise, also for a
    body nested deeper than the parser goes."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except RecursionError:
        raise ValueError("nested too deep") from None


def error_answer(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)
    data = body.encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    return status, headers, data


class BeaconApp:
    """The beacon routes over ``services``; every other request goes on to ``fallback``."""

    def __init__(self, services: Services, fallback: WSGIApplication) -> None:
        self._svc = services
        self._fallback = fallback
        metrics = services.metrics
        self._latency = {path: metrics.latency.labels(route=path) for path in (HIT_PATH, GIF_PATH)}
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._outcomes = {outcome: metrics.hits.labels(outcome=str(outcome)) for outcome in Outcome}
        self._handlers: dict[str, Callable[[WSGIEnvironment, str], Answer]] = {
            HIT_PATH: self._hit,
            GIF_PATH: self._gif,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = self._handlers.get(path)
        if handler is None:
            return self._fallback(environ, start_response)
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = given if VALID_REQUEST_ID.fullmatch(given) else new_request_id()
        token = BEACON_REQUEST_ID.set(request_id)
        try:
            status, headers, body = handler(environ, method)
        except AnalyticsError as err:
            status, headers, body = error_answer(err.status, err.code, err.message)
            if isinstance(err, StoreUnavailable):
                headers.append(("Retry-After", "5"))
        except Exception as err:
            log.exception("unhandled error", exc_info=err)
            status, headers, body = error_answer(
                500, "internal_error", "the service failed to answer this request"
            )
        finally:
            BEACON_REQUEST_ID.reset(token)
        headers += CORS
        headers.append((REQUEST_ID_HEADER, request_id))
        self._observe(path, method, status, started)
        start_response(STATUS[status], headers)
        return [body] if method != "HEAD" else []

    def _observe(self, path: str, method: str, status: int, started: float) -> None:
        key = (path, method, status)
        counter = self._requests.get(key)
        if counter is None:
            label = method if method in ("GET", "HEAD", "POST", "OPTIONS") else "other"
            counter = self._svc.metrics.requests.labels(
                route=path, method=label, status=str(status)
            )
            self._requests[key] = counter
        counter.inc()
        self._latency[path].observe(time.perf_counter() - started)

    def _hit(self, environ: WSGIEnvironment, method: str) -> Answer:
        if method == "OPTIONS":
            return 204, list(PREFLIGHT), b""
        if method != "POST":
            return self._not_allowed("OPTIONS, POST")
        try:
            data = read_json_body(environ)
        except AnalyticsError:
            self._outcomes[Outcome.INVALID].inc()
            raise
        self._count(environ, data)
        return 204, [], b""

    def _gif(self, environ: WSGIEnvironment, method: str) -> Answer:
        if method == "OPTIONS":
            return 200, [("Allow", "GET, HEAD, OPTIONS"), ("Content-Length", "0")], b""
        if method not in ("GET", "HEAD"):
            return self._not_allowed("GET, HEAD, OPTIONS")
        if method == "GET":  # a HEAD asks about the pixel, it is no page view
            query: dict[str, str] = {}
            for name, value in parse_qsl(
                environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="replace"
            ):
                query.setdefault(name, value)
            self._count(environ, query)
        return 200, list(GIF_HEADERS), PIXEL

    def _not_allowed(self, allow: str) -> Answer:
        status, headers, body = error_answer(
            405, "method_not_allowed", "The method is not allowed for the requested URL."
        )
        headers.append(("Allow", allow))
        return status, headers, body

    def _count(self, environ: WSGIEnvironment, data: Any) -> Outcome:
        """Counts one hit, recording its outcome in the metrics whatever happens."""
        try:
            site_id, url, kind, referrer = parse_hit_fields(data)
            outcome = self._svc.counting.count(
                Hit(
                    site_id=site_id,
                    url=url,
                    kind=kind,
                    client_ip=environ.get("REMOTE_ADDR") or "",
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                    origin=environ.get("HTTP_ORIGIN"),
                    referer=environ.get("HTTP_REFERER"),
                    sec_gpc=environ.get("HTTP_SEC_GPC"),
                    referrer=referrer,
                )
            )
        except UnknownSite:
            self._outcomes[Outcome.UNKNOWN_SITE].inc()
            raise
        except AnalyticsError as err:
            # Bad input is invalid; a hit the service failed to keep is lost.
            self._outcomes[Outcome.LOST if err.status >= 500 else Outcome.INVALID].inc()
            raise
        self._outcomes[outcome].inc()
        return outcome
