"""Hostile requests to every route, beyond the beacon's fields: bodies nested deeper than any
parser goes answer 4xx with the JSON error and log nothing; no request header ever reaches a
redirect's Location; and a warning, once in a while, when trusted proxies are configured but
requests come without the X-Forwarded-For they would set."""

from __future__ import annotations

import io
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from werkzeug.test import TestResponse

from analytics import create_app
from analytics.clock import FixedClock
from analytics.embedded import free_port
from analytics.settings import Settings
from analytics.web.admin import HISTORY_BODY_BYTES
from analytics.web.beacon import GIF_PATH, HIT_PATH
from analytics.web.proxies import WARN_EVERY
from tests.helpers import AUTH, BROWSER_UA, TOKEN, hit, serving
from tests.integration.test_hostile_requests import redis_snapshot

ADMIN_MAX = 64 * 1024
BEACON_MAX = 8 * 1024
HOSTILE_HOSTS = {"Host": "evil.example", "X-Forwarded-Host": "evil-forwarded.example"}
SAMPLE_ARGS = {"site_id": "demo", "reset_id": "1764169265000-0", "name": "admin.js"}
"""A value for each variable part of a route, so that every route can be called."""
BODY_ROUTES = {
    ("POST", "/api/v1/admin/sites"),
    ("PATCH", "/api/v1/admin/sites/demo"),
    ("PUT", "/api/v1/admin/sites/demo/offsets"),
    ("POST", "/api/v1/admin/sites/demo/reset"),
    ("POST", "/api/v1/admin/sites/demo/history"),
}
"""The routes that read a JSON body (besides the beacon's, which answers before Flask)."""


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


NESTED_BODIES = [
    pytest.param(b"[" * 1_000, id="1000-open-brackets"),
    pytest.param(nested(990), id="990-deep-closed"),
    pytest.param(b'{"name": ' + nested(980) + b"}", id="980-deep-in-a-field"),
    pytest.param(b'{"origins": [' + nested(975) + b"]}", id="975-deep-in-a-list-field"),
    pytest.param(b'{"offsets": {"pageviews": ' + nested(970) + b"}}", id="970-deep-in-offsets"),
    pytest.param(b'{"windows": [' + nested(975) + b"]}", id="975-deep-in-windows"),
    pytest.param(b"[" * ADMIN_MAX, id="64-KiB-of-open-brackets"),
    pytest.param(b"{" * ADMIN_MAX, id="64-KiB-of-open-braces"),
    pytest.param(b'{"a":' * (ADMIN_MAX // 5), id="64-KiB-of-nested-objects"),
]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def assert_json_error(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"], error


def every_route(app: Flask) -> Iterator[tuple[str, str]]:
    """(method, path) of every Flask route, its variable parts filled from SAMPLE_ARGS."""
    urls = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        path = urls.build(rule.endpoint, {arg: SAMPLE_ARGS[arg] for arg in rule.arguments})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, path


# -- nested bodies ------------------------------------------------------------------------------


def test_the_routes_that_read_a_json_body_are_the_ones_listed(admin_app: Flask) -> None:
    """Every route that answers an empty body with "not a JSON object" is one of BODY_ROUTES,
    so that a new route reading JSON is seen here."""
    client = admin_app.test_client()
    reading = set()
    for method, path in every_route(admin_app):
        response = client.open(path, method=method, data=b"", headers=AUTH)
        if response.status_code == 400 and "JSON object" in response.get_data(as_text=True):
            reading.add((method, path))
    assert reading == BODY_ROUTES


@pytest.mark.parametrize("body", NESTED_BODIES)
def test_a_deeply_nested_admin_body_is_a_400_and_logs_nothing(
    admin_app: Flask, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    assert len(body) <= ADMIN_MAX
    client = admin_app.test_client()
    before = redis_snapshot(redis_client)
    for method, path in sorted(BODY_ROUTES):
        response = client.open(
            path, method=method, data=body, content_type="application/json", headers=AUTH
        )
        assert_json_error(response, 400, "invalid_request")
    assert errors_logged(caplog) == []
    assert redis_snapshot(redis_client) == before


def test_a_nested_body_sent_to_every_route_never_fails(
    admin_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = admin_app.test_client()
    routes = [*every_route(admin_app), ("POST", HIT_PATH), ("GET", GIF_PATH)]
    for depth in (990, 1_000, 5_000):
        for method, path in routes:
            response = client.open(
                path, method=method, data=b"[" * depth, content_type="text/plain", headers=AUTH
            )
            assert response.status_code < 500, (method, path, response.get_data(as_text=True))
            assert response.mimetype in ("application/json", "image/gif", "text/html") or (
                response.status_code < 400
            ), (method, path)
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("stream", [False, True], ids=["with-length", "chunked"])
def test_100000_open_brackets_are_refused_for_their_size(
    admin_app: Flask, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    """Over both bodies' size limits: 413, before any of it is parsed."""
    client = admin_app.test_client()
    body = b"[" * 100_000

    def send(method: str, path: str) -> TestResponse:
        if not stream:
            return client.open(
                path, method=method, data=body, content_type="text/plain", headers=AUTH
            )
        return client.open(
            path,
            method=method,
            input_stream=io.BytesIO(body),
            content_type="text/plain",
            headers={**AUTH, "Transfer-Encoding": "chunked"},
            environ_base={"wsgi.input_terminated": True},
        )

    for method, path in [*sorted(BODY_ROUTES), ("POST", HIT_PATH)]:
        if path.endswith("/history"):  # a history import may be larger: over its own limit
            body = b"[" * (HISTORY_BODY_BYTES + 1)
        assert_json_error(send(method, path), 413, "payload_too_large")
        body = b"[" * 100_000
    assert errors_logged(caplog) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * BEACON_MAX, id="8-KiB-of-open-brackets"),
        pytest.param(nested(BEACON_MAX // 2), id="8-KiB-closed"),
        pytest.param(
            b'{"site": "demo", "url": "https://example.vn/", "x": ' + b"[" * 8_000,
            id="open-brackets-after-good-fields",
        ),
    ],
)
def test_a_deeply_nested_beacon_is_a_400_and_counts_nothing(
    client: FlaskClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    assert len(body) <= BEACON_MAX
    before = redis_snapshot(redis_client)
    response = client.post(
        HIT_PATH, data=body, content_type="text/plain", headers={"User-Agent": BROWSER_UA}
    )
    assert_json_error(response, 400, "invalid_json")
    assert errors_logged(caplog) == []
    assert redis_snapshot(redis_client) == before


# -- redirects ----------------------------------------------------------------------------------


def doubled_slashes(path: str) -> list[str]:
    """``path`` with each of its slashes doubled in turn, and with one added at its end."""
    variants = [path[:i] + "/" + path[i:] for i, c in enumerate(path) if c == "/"]
    return [*variants, path + "/", path.rstrip("/") or "/"]


def assert_no_header_echoed(response: TestResponse, what: str) -> None:
    location = response.headers.get("Location")
    if location is not None:
        assert location.startswith("/") and not location.startswith("//"), (what, location)
        assert "\\" not in location, (what, location)
    for value in response.headers.values():
        assert "evil" not in value, (what, dict(response.headers))


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_no_route_echoes_the_host_into_a_location(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis, trusted_proxies: int
) -> None:
    app = create_app(
        settings.replace(admin_token=TOKEN, trusted_proxies=trusted_proxies),
        clock=clock,
        registry=CollectorRegistry(),
    )
    client = app.test_client()
    headers = {**HOSTILE_HOSTS, "X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    sent = 0
    for method, path in {("GET", "/admin/admin.js"), *every_route(app)}:
        for variant in doubled_slashes(path):
            # PATH_INFO as given: the test client would read a leading // as a host.
            overrides = {"PATH_INFO": variant}
            response = client.open("/", method=method, headers=headers, environ_overrides=overrides)
            assert_no_header_echoed(response, f"{method} {variant}")
            assert response.status_code not in (301, 302, 303, 307, 308), (method, variant)
            sent += 1
    assert sent > 100


def test_doubled_slashes_inside_a_path_are_no_route(client: FlaskClient) -> None:
    """Not redirected to the path with one slash, as werkzeug would (absolutely, to the Host
    header's host); leading slashes werkzeug passes over, without a redirect."""
    for path in ("/admin//admin.js", "/api/v1//sites/demo/counters", "/widget//demo"):
        response = client.get("/", headers=HOSTILE_HOSTS, environ_overrides={"PATH_INFO": path})
        assert_json_error(response, 404, "not_found")
        assert "Location" not in response.headers


def test_a_routing_redirect_names_no_host(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    """Should a route with a trailing slash ever redirect (strict slashes), or werkzeug redirect
    an empty path to /, the Location is a path: the Host header is not in it."""
    app = create_app(settings, clock=clock, registry=CollectorRegistry())
    app.add_url_rule("/folder/", "folder", lambda: "folder")
    client = app.test_client()
    response = client.get("/folder?a=1", headers=HOSTILE_HOSTS)
    assert response.status_code == 308
    assert response.headers["Location"] == "/folder/?a=1"

    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.update(status=status, headers=dict(headers))

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "",  # what a server may hand over for an absolute-form request
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "evil.example",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    b"".join(app.wsgi_app(environ, start_response))  # type: ignore[arg-type]
    assert seen["status"].startswith("308")
    assert seen["headers"]["Location"] == "/"


# -- trusted proxies without X-Forwarded-For --------------------------------------------------


def proxy_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "ANALYTICS_TRUSTED_PROXIES" in r.getMessage()
    ]


def trusting(settings: Settings, clock: FixedClock, proxies: int) -> FlaskClient:
    app = create_app(
        settings.replace(trusted_proxies=proxies, admin_token=TOKEN),
        clock=clock,
        registry=CollectorRegistry(),
    )
    return app.test_client()


def test_trusted_proxies_without_x_forwarded_for_warn_once_in_a_while(
    settings: Settings,
    clock: FixedClock,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = trusting(settings, clock, 1)
    caplog.set_level(logging.WARNING)
    for n in range(20):
        assert hit(client, url=f"https://example.vn/{n}", ip="192.0.2.10") == 204
    client.get("/api/v1/admin/sites", headers=AUTH, environ_base={"REMOTE_ADDR": "192.0.2.11"})
    (warning,) = proxy_warnings(caplog)
    message = warning.getMessage()
    assert "X-Forwarded-For" in message and "is 1" in message
    assert "192.0.2" not in message  # no client address in the log

    clock.advance(WARN_EVERY.total_seconds() - 1)
    assert hit(client, url="https://example.vn/later", ip="192.0.2.10") == 204
    assert len(proxy_warnings(caplog)) == 1
    clock.advance(1)
    assert hit(client, url="https://example.vn/later-still", ip="192.0.2.10") == 204
    assert len(proxy_warnings(caplog)) == 2


@pytest.mark.parametrize(
    ("proxies", "forwarded", "warns"),
    [
        (1, "198.51.100.1", False),
        (1, "10.0.0.1, 198.51.100.1", False),
        (1, "", True),
        (1, " , ", True),
        (2, "198.51.100.1", True),  # fewer addresses than proxies said to be in front
        (2, "198.51.100.1, 10.0.0.1", False),
    ],
)
def test_the_warning_is_for_fewer_addresses_than_proxies(
    settings: Settings,
    clock: FixedClock,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    proxies: int,
    forwarded: str,
    warns: bool,
) -> None:
    client = trusting(settings, clock, proxies)
    caplog.set_level(logging.WARNING)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    assert hit(client, ip="192.0.2.10", headers=headers) == 204
    assert len(proxy_warnings(caplog)) == (1 if warns else 0)


def test_no_warning_without_trusted_proxies_or_for_routes_that_use_no_address(
    settings: Settings,
    clock: FixedClock,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    assert hit(trusting(settings, clock, 0), ip="192.0.2.10") == 204
    behind = trusting(settings, clock, 1)
    # A load balancer's health check, a scrape, a widget: straight to the service, no proxy.
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/sites/demo/counters", "/"):
        assert behind.get(path).status_code == 200
    assert proxy_warnings(caplog) == []
    assert hit(behind, ip="192.0.2.10") == 204
    assert len(proxy_warnings(caplog)) == 1


# -- the same through the production server -----------------------------------------------------


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.slow
def test_the_production_server_answers_hostile_requests_the_same(tmp_path: Path) -> None:
    port = free_port()
    env = {"ANALYTICS_ADMIN_TOKEN": TOKEN, "ANALYTICS_TRUSTED_PROXIES": "1"}
    with serving(tmp_path, port, "--workers", "1", **env) as process:
        for path in ("/admin//admin.js", "/docs", "//docs", "/widget//demo"):
            answer = raw_request(
                port,
                f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n"
                "X-Forwarded-Host: evil-forwarded.example\r\nX-Forwarded-For: 198.51.100.1\r\n"
                "Connection: close\r\n\r\n".encode(),
            )
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert b"evil" not in head, (path, head)
            assert not head.startswith((b"http/1.1 30", b"http/1.1 5")), (path, head)

        body = b"[" * ADMIN_MAX
        answer = raw_request(
            port,
            b"POST /api/v1/admin/sites HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n".encode()
            + f"X-Forwarded-For: 198.51.100.1\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body,
        )
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b'"invalid_request"' in answer

        for n in range(3):  # no proxy in front: no X-Forwarded-For
            beacon = f'{{"site": "demo", "url": "https://example.vn/{n}"}}'.encode()
            answer = raw_request(
                port,
                b"POST /api/v1/hit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                + f"User-Agent: {BROWSER_UA}\r\nContent-Length: {len(beacon)}\r\n".encode()
                + b"Connection: close\r\n\r\n"
                + beacon,
            )
            assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert process.stdout is not None
        output = process.stdout.read()
    assert output.count("ANALYTICS_TRUSTED_PROXIES is 1") == 1, output
    assert "Traceback" not in output, output
