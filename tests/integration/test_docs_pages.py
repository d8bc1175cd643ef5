"""/docs/: the README and docs/*.md as HTML pages under the home page's strict headers, their
links leading to one another's pages and headings, found in a checkout and in a built wheel."""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from flask.testing import FlaskClient

from analytics.doc_pages import find_docs, render, route_of
from analytics.web import home
from analytics.web.admin_page import SECURITY_HEADERS
from tests.integration.test_deploy_config import dockerfile
from tests.test_docs import anchors

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "readme": ROOT / "README.md",
    **{path.stem: path for path in sorted((ROOT / "docs").glob("*.md"))},
}
HREF = re.compile(r'href="([^"]*)"')
ID = re.compile(r'<h[1-6] id="([^"]*)"')
STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
ROUTES = {"README.md": "readme", "docs/api.md": "api", "docs/operations.md": "operations"}


def test_the_index_links_every_doc(client: FlaskClient) -> None:
    assert {"readme", "api", "operations"} <= PAGES.keys()
    index = client.get("/docs/")
    assert index.status_code == 200 and index.mimetype == "text/html"
    links = set(HREF.findall(index.get_data(as_text=True))) - {"data:,"}
    assert {f"/docs/{name}" for name in PAGES} <= links
    for link in links:
        assert client.get(link).status_code == 200, link


def test_docs_without_its_slash_answers_the_index_without_a_redirect(
    client: FlaskClient,
) -> None:
    bare = client.get("/docs", headers={"Host": "elsewhere.example"})
    assert bare.status_code == 200 and "Location" not in bare.headers
    assert bare.get_data() == client.get("/docs/").get_data()


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_doc_is_a_page_with_githubs_anchors(client: FlaskClient, name: str) -> None:
    page = client.get(f"/docs/{name}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    ids = ID.findall(html)
    assert len(ids) == len(set(ids))
    assert set(ids) == anchors(PAGES[name])
    assert "<script" not in html


def test_the_api_reference_is_rendered(client: FlaskClient) -> None:
    html = client.get("/docs/api").get_data(as_text=True)
    assert "<title>API reference · visit-analytics</title>" in html
    assert '<h1 id="api-reference">API reference</h1>' in html
    assert '<h3 id="get-openapijson"><code>GET /openapi.json</code></h3>' in html
    assert "<table>" in html  # the command line's table
    assert '<a href="/docs/operations">operations.md</a>' in html
    assert '<a href="/docs/readme#configuration">configuration section</a>' in html


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_link_between_the_docs_reaches_a_page_and_its_heading(
    client: FlaskClient, name: str
) -> None:
    html = client.get(f"/docs/{name}").get_data(as_text=True)
    for link in HREF.findall(html):
        assert ".md" not in link, f"{name}: {link} still points at a file"
        if link.startswith("#"):
            assert link[1:] in ID.findall(html), f"{name}: {link}"
        elif link.startswith("/"):
            target, _, fragment = link.partition("#")
            page = client.get(target)
            assert page.status_code == 200, f"{name}: {link}"
            if fragment:
                assert fragment in ID.findall(page.get_data(as_text=True)), f"{name}: {link}"


@pytest.mark.parametrize("path", ["/docs/", "/docs/api"])
def test_the_docs_have_the_home_pages_security_headers(client: FlaskClient, path: str) -> None:
    page = client.get(path)
    for name in SECURITY_HEADERS:
        if name != "Content-Security-Policy":
            assert page.headers[name] == SECURITY_HEADERS[name], name
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "unsafe-inline" not in csp
    styles = STYLE.findall(page.get_data(as_text=True))
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}';" in csp


def test_a_page_is_revalidated_by_its_etag(client: FlaskClient) -> None:
    page = client.get("/docs/operations")
    assert page.headers["Cache-Control"] == "no-cache"
    again = client.get("/docs/operations", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["Content-Security-Policy"] == page.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "path", ["/docs/nope", "/docs/api.md", "/docs/README", "/docs/api/", "/docs/..%2fpyproject"]
)
def test_an_unknown_doc_is_the_json_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_are_rendered_once_and_unknown_names_cached_never(client: FlaskClient) -> None:
    first = client.get("/docs/api").get_data()
    held = home.doc_page.cache_info().currsize
    hits = home.doc_page.cache_info().hits
    assert client.get("/docs/api").get_data() == first
    assert home.doc_page.cache_info().hits == hits + 1
    for index in range(5):
        assert client.get(f"/docs/unknown-{index}").status_code == 404
    assert home.doc_page.cache_info().currsize == held


# -- the rendering rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "doc", "route"),
    [
        ("operations.md#tune", "docs/api.md", "/docs/operations#tune"),
        ("../README.md#configuration", "docs/api.md", "/docs/readme#configuration"),
        ("docs/api.md#admin-api", "README.md", "/docs/api#admin-api"),
        ("docs/api.md", "README.md", "/docs/api"),
        ("api.md", "docs/operations.md", "/docs/api"),
        ("#tune", "docs/operations.md", "#tune"),
        ("https://example.org/a.md", "README.md", "https://example.org/a.md"),
        ("../config/analytics.toml", "docs/api.md", None),
        ("bench/README.md", "README.md", None),
        ("../../README.md", "docs/api.md", None),
    ],
)
def test_links_lead_to_routes(link: str, doc: str, route: str | None) -> None:
    assert route_of(link, doc, ROUTES) == route


def test_a_link_to_an_unserved_file_is_left_as_its_text() -> None:
    html = render(
        "See [the defaults](../config/analytics.toml) and [api](api.md).", "docs/x.md", ROUTES
    ).html
    assert html == '<p>See the defaults and <a href="/docs/api">api</a>.</p>\n'


def test_raw_html_is_shown_as_text_and_repeated_headings_get_numbered_ids() -> None:
    rendered = render("# Top\n\n<script>alert(1)</script>\n\n## Use\n\n## Use\n", "README.md", {})
    assert rendered.title == "Top"
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert ID.findall(rendered.html) == ["top", "use", "use-1"]


def test_the_docs_are_found_in_the_package_before_the_checkout(tmp_path: Path) -> None:
    package, checkout = tmp_path / "analytics", tmp_path / "checkout"
    (package / "docs").mkdir(parents=True)
    (checkout / "docs").mkdir(parents=True)
    (package / "docs" / "README.md").write_text("# Shipped\n")
    (package / "docs" / "Guide.md").write_text("# Guide\n")
    (checkout / "README.md").write_text("# Checkout\n")
    (checkout / "docs" / "api.md").write_text("# API\n")
    shipped = find_docs(package, checkout)
    assert {name: doc.path for name, doc in shipped.items()} == {
        "readme": "README.md",
        "guide": "docs/Guide.md",
    }
    assert shipped["readme"].source.read_text(encoding="utf-8") == "# Shipped\n"
    shutil.rmtree(package / "docs")
    from_checkout = find_docs(package, checkout)
    assert {name: doc.path for name, doc in from_checkout.items()} == {
        "readme": "README.md",
        "api": "docs/api.md",
    }
    assert find_docs(package, tmp_path / "nowhere") == {}


# -- the wheel carries them, built from what the Dockerfile copies ---------------------------


def build_stage_sources() -> list[str]:
    """The files the Dockerfile's build stage copies from the context (its wheel's sources)."""
    instructions = dockerfile()
    second_from = [i for i, (word, _) in enumerate(instructions) if word == "FROM"][1]
    sources = []
    for word, rest in instructions[:second_from]:
        if word == "COPY":
            sources += [arg for arg in shlex.split(rest) if not arg.startswith("--")][:-1]
    return sources


@pytest.mark.slow
def test_a_wheel_built_as_the_image_builds_it_serves_the_docs(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    for source in build_stage_sources():
        if (ROOT / source).is_dir():
            ignored = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / source, context / source, ignore=ignored)
        else:
            shutil.copy(ROOT / source, context / source)
    assert (context / "docs" / "api.md").is_file(), "the image's build stage lacks docs/"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("visit_analytics-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {f"analytics/docs/{PurePosixPath(p).name}" for p in map(str, PAGES.values())} <= names
    # The installed package, away from any checkout, finds and renders its shipped docs.
    probe = (
        "import analytics.doc_pages as d; docs = d.installed_docs(); "
        "print(d.__file__); print(sorted(docs)); print(d.render_doc(docs['api'], docs).title)"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    where, names_found, title = found.stdout.splitlines()
    assert Path(where).is_relative_to(tmp_path / "site")
    assert names_found == repr(sorted(PAGES))
    assert title == "API reference"
