"""The page at /: links to the demo, the admin page, the docs and the OpenAPI document, each
working, under the same strict headers as the admin page, and an embed snippet naming the
service as the client reached it."""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, render_template
from flask.testing import FlaskClient

from analytics.web.admin_page import SECURITY_HEADERS

HREF = re.compile(r'href="([^"]*)"')
STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def test_home_is_a_page_of_links(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    links = set(HREF.findall(html)) - {"data:,"}
    assert {"/demo", "/admin", "/openapi.json"} <= links
    assert {"/docs/", "/docs/api", "/docs/operations"} <= links
    assert "docs/api.md" in html and "docs/operations.md" in html


def test_every_link_of_home_answers(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    for link in set(HREF.findall(html)) - {"data:,"}:
        assert link.startswith("/"), f"{link} leaves the service"
        assert client.get(link).status_code == 200, link


def test_home_has_the_admin_pages_security_headers(client: FlaskClient) -> None:
    page = client.get("/")
    for name in SECURITY_HEADERS:
        if name != "Content-Security-Policy":
            assert page.headers[name] == SECURITY_HEADERS[name], name
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp


def test_the_csp_allows_exactly_the_pages_inline_style(client: FlaskClient) -> None:
    page = client.get("/")
    styles = STYLE.findall(page.get_data(as_text=True))
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    style_src = next(
        d for d in page.headers["Content-Security-Policy"].split("; ") if d.startswith("style-src")
    )
    assert style_src == f"style-src 'sha256-{digest}'"


def snippet_of(html: str) -> str:
    return next(line for line in html.splitlines() if "widget.js" in line)


def test_the_embed_snippet_names_the_service_as_the_client_reached_it(
    client: FlaskClient,
) -> None:
    html = client.get("/", base_url="https://stats.example.org:8443").get_data(as_text=True)
    assert "STATS-HOST" not in html
    assert 'src="https://stats.example.org:8443/widget.js"' in snippet_of(html)
    plain = client.get("/", base_url="http://127.0.0.1:8000").get_data(as_text=True)
    assert 'src="http://127.0.0.1:8000/widget.js"' in snippet_of(plain)


def test_a_hostile_host_header_is_never_echoed_as_markup(client: FlaskClient) -> None:
    page = client.get("/", headers={"Host": 'x"><script>alert(1)</script>'})
    assert page.status_code == 200 and "Location" not in page.headers
    html = page.get_data(as_text=True)
    assert "<script" not in html and "alert(1)" not in html


def test_the_template_escapes_the_host_it_is_given(app: Flask) -> None:
    """Werkzeug already drops a Host with markup in it; the template would escape one anyway."""
    with app.test_request_context("/"):
        html = render_template("home.html", host_url='https://x"><img src=y>/')
    assert '"><img' not in html
    assert 'src="https://x&#34;&gt;&lt;img src=y&gt;/widget.js"' in snippet_of(html)
