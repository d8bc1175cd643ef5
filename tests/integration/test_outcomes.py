"""Every hit that is answered but not counted, each with its own outcome in the metrics."""

from __future__ import annotations

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import counters, hit

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36"
)


def pageviews(client: FlaskClient, site: str = "demo") -> int:
    total: int = counters(client, site)["windows"]["total"]["pageviews"]
    return total


def outcome_count(app: Flask, outcome: str) -> float:
    services: Services = app.extensions["analytics"]
    value = services.metrics.registry.get_sample_value("analytics_hits_total", {"outcome": outcome})
    return value or 0.0


@pytest.mark.parametrize(
    "ua",
    [GOOGLEBOT, HEADLESS, "curl/8.5.0", "python-requests/2.32.3", "Wget/1.21.4", "", "   "],
    ids=["googlebot", "headless-chrome", "curl", "requests", "wget", "empty", "blank"],
)
def test_bots_are_not_counted(app: Flask, client: FlaskClient, ua: str) -> None:
    assert hit(client, ua=ua) == 204
    assert pageviews(client) == 0
    assert counters(client)["online"] == 0
    assert outcome_count(app, "bot") == 1
    assert outcome_count(app, "counted") == 0


def test_origins_of_a_site_that_lists_them(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    services.sites.upsert(
        {"id": "laocai", "origins": ["https://laocai.gov.vn", "https://www.laocai.gov.vn:443"]}
    )
    ok = "https://www.laocai.gov.vn"
    assert hit(client, "laocai", url="https://a/1", headers={"Origin": ok}) == 204
    assert (
        hit(client, "laocai", url="https://a/2", headers={"Origin": "HTTPS://LAOCAI.GOV.VN"}) == 204
    )
    # No Origin (an <img> beacon): the Referer decides.
    assert hit(client, "laocai", url="https://a/3", headers={"Referer": f"{ok}/tin-tuc/1"}) == 204
    assert pageviews(client, "laocai") == 3
    assert outcome_count(app, "counted") == 3

    rejected = [
        {"Origin": "https://evil.example"},
        {"Origin": "http://laocai.gov.vn"},  # other scheme
        {"Origin": "https://laocai.gov.vn:8443"},  # other port
        {"Origin": "https://laocai.gov.vn.evil.example"},
        {"Referer": "https://evil.example/laocai.gov.vn"},
        {"Origin": "null"},
        {},  # neither header
    ]
    for n, headers in enumerate(rejected):
        assert hit(client, "laocai", url=f"https://a/x{n}", headers=headers) == 204
    assert pageviews(client, "laocai") == 3
    assert outcome_count(app, "origin_rejected") == len(rejected)


def test_a_site_without_origins_accepts_any(client: FlaskClient) -> None:
    assert hit(client, headers={"Origin": "https://anywhere.example"}) == 204
    assert hit(client, url="https://example.vn/2") == 204
    assert pageviews(client) == 2


def test_a_reload_within_ten_seconds_counts_once(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    page = "https://example.vn/tin-tuc/1"
    hit(client, url=page)
    clock.advance(9.999)
    hit(client, url=page)
    assert pageviews(client) == 1
    assert outcome_count(app, "duplicate") == 1
    hit(client, url="https://example.vn/tin-tuc/2")  # another page is no reload
    assert pageviews(client) == 2
    clock.advance(0.001)  # ten seconds after the counted view
    hit(client, url=page)
    assert pageviews(client) == 3
    hit(client, url=page, ip="198.51.100.9")  # another visitor on the same page
    assert pageviews(client) == 4


def test_the_reload_guard_key_expires_on_its_own(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    hit(client, url="https://example.vn/x")
    guards = list(redis_client.scan_iter(match="va:{demo}:dup:*"))
    assert len(guards) == 1
    assert 0 < redis_client.pttl(guards[0]) <= 10_000


def test_a_flood_from_one_address_is_cut_at_its_pageviews(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """600 pageviews a network in any 10 minutes: the 601st waits until the first leaves the
    window (the 10 minutes before the current one, and that one whole: a little longer, never
    shorter)."""
    clock.set(clock().replace(second=0, microsecond=0))
    for n in range(605):
        assert hit(client, url=f"https://example.vn/{n}") == 204
        clock.advance(0.5)  # 302.5 s in all
    assert pageviews(client) == 600
    assert outcome_count(app, "rate_limited") == 5
    clock.advance(659 - 302.5)  # 10 min 59 s after the first: still in its window
    hit(client, url="https://example.vn/still-held")
    assert pageviews(client) == 600
    clock.advance(1)  # 11 min after: the first minute (120 of them) has left it
    hit(client, url="https://example.vn/later")
    assert pageviews(client) == 601


def test_many_browsers_behind_one_address_are_cut_at_its_new_visitors(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    app = create_app(
        settings.replace(limit_new_visitors=5), clock=clock, registry=CollectorRegistry()
    )
    client = app.test_client()
    clock.set(clock().replace(second=0, microsecond=0))
    for n in range(8):
        hit(client, ua=f"Mozilla/5.0 (Windows NT 10.0) Chrome/124.0.{n}")
    assert pageviews(client) == 5
    assert outcome_count(app, "rate_limited") == 3
    hit(client, ip="198.51.100.77")  # another address is not limited
    assert pageviews(client) == 6


def test_an_oversized_user_agent_is_a_bot(app: Flask, client: FlaskClient) -> None:
    assert hit(client, ua="Mozilla/5.0 " + "x" * 600) == 204
    assert hit(client, ua="Mozilla/5.0 (Windows NT 10.0) " + "a" * 60_000) == 204
    assert pageviews(client) == 0
    assert outcome_count(app, "bot") == 2


def test_global_privacy_control_when_the_site_honours_it(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    services.sites.upsert({"id": "private", "honor_gpc": True})
    assert hit(client, "private", headers={"Sec-GPC": "1"}) == 204
    assert pageviews(client, "private") == 0
    assert outcome_count(app, "opted_out") == 1
    # Sites that do not opt in count the hit; GPC 0 always counts.
    hit(client, headers={"Sec-GPC": "1"})
    hit(client, "private", url="https://example.vn/2", headers={"Sec-GPC": "0"})
    assert pageviews(client) == 1
    assert pageviews(client, "private") == 1


def test_outcomes_of_rejected_requests(app: Flask, client: FlaskClient) -> None:
    assert hit(client, "nope") == 404
    assert client.post("/api/v1/hit", data="{", content_type="text/plain").status_code == 400
    big = client.post("/api/v1/hit", data="x" * 20_000, content_type="text/plain")
    assert big.status_code == 413
    assert outcome_count(app, "unknown_site") == 1
    assert outcome_count(app, "invalid") == 2
    assert hit(client, kind="heartbeat") == 204
    assert outcome_count(app, "heartbeat") == 1


def test_the_gif_beacon_counts_and_is_never_cached(client: FlaskClient) -> None:
    response = client.get(
        "/api/v1/hit.gif",
        query_string={"site": "demo", "url": "https://example.vn/no-js", "referrer": ""},
        headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0"},
    )
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    assert response.data.startswith(b"GIF89a")
    assert "no-store" in response.headers["Cache-Control"]
    assert pageviews(client) == 1
    bot = client.get(
        "/api/v1/hit.gif",
        query_string={"site": "demo", "url": "https://example.vn/no-js"},
        headers={"User-Agent": GOOGLEBOT},
    )
    assert bot.status_code == 200 and bot.mimetype == "image/gif"
    assert pageviews(client) == 1
    head = client.head(
        "/api/v1/hit.gif",
        query_string={"site": "demo", "url": "https://example.vn/head"},
        headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0"},
    )
    assert head.status_code == 200
    assert pageviews(client) == 1  # a HEAD is no page view


def test_client_address_honours_trusted_proxies(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    """Behind one proxy, X-Forwarded-For names the visitor; without one it is ignored."""
    for proxies, visitors in ((1, 2), (0, 1)):
        app = create_app(
            settings.replace(trusted_proxies=proxies), clock=clock, registry=CollectorRegistry()
        )
        site = f"proxies-{proxies}"
        app.extensions["analytics"].sites.upsert({"id": site})
        client = app.test_client()
        for forwarded in ("198.51.100.1", "198.51.100.2"):
            url = f"https://example.vn/{forwarded}"
            hit(client, site, url, headers={"X-Forwarded-For": forwarded}, ip="10.0.0.1")
        assert counters(client, site)["windows"]["today"]["visitors"] == visitors


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://example.vn/"}, "site"),
        ({"site": "demo"}, "url"),
        ({"site": "demo", "url": "ftp://example.vn/"}, "url"),
        ({"site": "demo", "url": "https://example.vn/", "referrer": 7}, "referrer"),
        ({"site": "demo", "url": "https://example.vn/", "type": "click"}, "type"),
    ],
)
def test_a_bad_beacon_field_is_named_in_the_error(
    client: FlaskClient, body: dict[str, object], field: str
) -> None:
    response = client.post("/api/v1/hit", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == field
    assert f"'{field}'" in error["message"]
