"""GET /admin: a static page, its script and style, served under a strict CSP."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from werkzeug.test import TestResponse

from analytics import create_app
from analytics.clock import FixedClock
from analytics.render import LABELS, format_count
from analytics.settings import Settings

ASSETS = {
    "/admin/admin.js": "application/javascript; charset=utf-8",
    "/admin/admin.css": "text/css; charset=utf-8",
}
# The one absolute URL the files may hold: the SVG namespace, a name that is never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def package_file(*parts: str) -> str:
    return resources.files("analytics").joinpath(*parts).read_text("utf-8")


def csp_of(response: TestResponse) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    directives = [d.strip().split(None, 1) for d in header.split(";") if d.strip()]
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


@pytest.fixture
def admin_client(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> FlaskClient:
    app = create_app(
        settings.replace(admin_token="s3cret-admin-token-for-tests"),
        clock=clock,
        registry=CollectorRegistry(),
    )
    return app.test_client()


@pytest.mark.parametrize("with_admin", [True, False])
def test_the_page_loads_without_a_token_and_holds_no_data(
    client: FlaskClient, admin_client: FlaskClient, with_admin: bool
) -> None:
    """With the admin API on or off, the page is the same file: the data calls need the token."""
    response = (admin_client if with_admin else client).get("/admin")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.get_data(as_text=True) == package_file("templates", "admin.html")
    assert "demo" not in response.get_data(as_text=True)


def test_the_page_is_never_framed_cached_or_sniffed(client: FlaskClient) -> None:
    response = client.get("/admin")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = csp_of(response)
    assert csp["frame-ancestors"] == "'none'"
    assert csp["base-uri"] == "'none'"
    assert csp["form-action"] == "'self'"
    assert csp["default-src"] in ("'none'", "'self'")
    # Scripts and styles from the service's own files only: nothing inline, nothing evaluated.
    for directive in ("script-src", "style-src", "connect-src"):
        assert csp.get(directive, csp["default-src"]) == "'self'", directive
    assert "unsafe" not in response.headers["Content-Security-Policy"]


def test_the_page_has_no_inline_script_or_style(client: FlaskClient) -> None:
    html = client.get("/admin").get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' defer src="/admin/admin.js"', "")]
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"
    assert '<link rel="stylesheet" href="/admin/admin.css">' in html


@pytest.mark.parametrize(("path", "content_type"), ASSETS.items())
def test_the_script_and_style_are_served_and_revalidated(
    client: FlaskClient, path: str, content_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    name = path.rsplit("/", 1)[1]
    assert response.get_data(as_text=True) == package_file("static", name)
    etag = response.headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""


def test_no_other_files_are_served_under_admin(client: FlaskClient) -> None:
    for path in ("/admin/widget.js", "/admin/../cli.py", "/admin/admin.html", "/admin/"):
        assert client.get(path).status_code == 404, path


def test_nothing_is_loaded_from_another_origin(client: FlaskClient) -> None:
    for path in ("/admin", *ASSETS):
        text = client.get(path).get_data(as_text=True)
        urls = set(re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"`)<>]*", text, re.I))
        assert urls <= {SVG_NAMESPACE}, (path, urls)
        # Nor protocol-relative URLs, imports or fonts from elsewhere.
        assert not re.search(r"""(src|href)\s*=\s*["']?//""", text), path
        assert "@import" not in text and "url(" not in text, path
    html = client.get("/admin").get_data(as_text=True)
    for attribute in re.findall(r"""(?:src|href)="([^"]*)\"""", html):
        assert attribute.startswith("/admin/") or attribute == "data:,", attribute


def test_the_token_is_kept_in_memory_only() -> None:
    """The script neither stores the token nor sends it anywhere but the Authorization header.

    The one thing it stores is the language chosen, under its own key, and nothing else."""
    script = package_file("static", "admin.js")
    for word in ("sessionStorage", "document.cookie", "indexedDB", "eval("):
        assert word not in script, word
    uses = re.findall(r"localStorage\.(\w+)\(([^)]*)\)", script)
    assert sorted(uses) == [("getItem", "LANG_KEY"), ("setItem", "LANG_KEY, lang")]
    assert script.count("localStorage") == len(uses)
    assert "const LANG_KEY = 'analytics-admin-lang';" in script
    assert re.search(
        r"lang = chosen === 'en' \? 'en' : 'vi';\n\s+try \{\n\s+window\.localStorage", script
    )
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


def test_the_labels_are_the_box_s(client: FlaskClient) -> None:
    """The page names windows and metrics, and groups digits, as the box does: from render.py."""
    response = client.get("/admin/labels.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    data = response.get_json()
    assert data == {
        "vi": {"labels": LABELS["vi"], "group": "."},
        "en": {"labels": LABELS["en"], "group": ","},
    }
    for lang in ("vi", "en"):
        group = data[lang]["group"]
        assert format_count(1_532_907, lang) == f"1{group}532{group}907"
    again = client.get("/admin/labels.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""


def test_package_files_have_no_second_url(client: FlaskClient) -> None:
    """Flask's default /static route is off: every file answers only at its own route."""
    for name in ("widget.js", "box.css", "admin.js", "admin.css"):
        assert client.get(f"/static/{name}").status_code == 404
