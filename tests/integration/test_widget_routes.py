"""The widget's server side: the script, the iframe box, the badge and the demo page."""

from __future__ import annotations

import gzip

from flask.testing import FlaskClient

from analytics.services import Services
from tests.helpers import hit


def test_the_iframe_box_shows_live_counts(client: FlaskClient, services: Services) -> None:
    services.sites.upsert({"id": "demo", "offsets": {"visits": 1_532_900}})
    for n in range(3):
        hit(client, url=f"https://example.vn/{n}", ip=f"198.51.100.{n}")
    page = client.get("/widget/demo")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<dt>Đang online</dt><dd>3</dd>" in html
    assert "<dt>Hôm nay</dt><dd>3</dd>" in html
    assert "<dt>Tất cả</dt><dd>1.532.903</dd>" in html
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "public, max-age=10"
    english = client.get("/widget/demo?lang=en&theme=dark&rows=total&metric=pageviews")
    assert "<dt>Total</dt><dd>3</dd>" in english.get_data(as_text=True)
    assert 'class="box dark"' in english.get_data(as_text=True)


def test_the_badge(client: FlaskClient, services: Services) -> None:
    services.sites.upsert({"id": "demo", "offsets": {"pageviews": 1_000_000}})
    hit(client)
    response = client.get("/badge/demo.svg?metric=pageviews&label=<b>views</b>&color=green")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    assert "1.000.001" in svg
    assert "&lt;b&gt;views&lt;/b&gt;" in svg and "<b>" not in svg


def test_errors_of_the_widget_routes(client: FlaskClient) -> None:
    for path in ("/widget/nope", "/badge/nope.svg", "/widget/NOT%20A%20SITE"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "unknown_site"
    for path in ("/widget/demo?lang=fr", "/badge/demo.svg?window=forever"):
        response = client.get(path)
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_request"


def test_the_script_is_cached_and_revalidated(client: FlaskClient) -> None:
    plain = client.get("/widget.js")
    assert plain.status_code == 200
    assert plain.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert plain.headers["Cache-Control"] == "public, max-age=3600"
    etag = plain.headers["ETag"]
    assert client.get("/widget.js", headers={"If-None-Match": etag}).status_code == 304
    version = etag.strip('"')
    pinned = client.get(f"/widget.js?v={version}")
    assert "immutable" in pinned.headers["Cache-Control"]
    zipped = client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data


def test_the_demo_page_embeds_the_widget(client: FlaskClient) -> None:
    page = client.get("/demo")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<script async src="/widget.js" data-site="demo"></script>' in html
    assert 'lang="vi"' in html
