"""The front door: a page of links at ``/``, the docs at ``/docs/`` and ``/openapi.json``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from importlib import metadata, resources

from flask import Blueprint, Response, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import NotFound

from analytics.doc_pages import installed_docs, render_doc
from analytics.web.admin_page import PageFile, page_file

bp = Blueprint("home", __name__)

STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
DISTRIBUTION = "visit-analytics"


def openapi_body(version: str) -> bytes:
    """The document of openapi.json with ``info.version`` set to ``version``."""
    document = json.loads(resources.files("analytics").joinpath("openapi.json").read_bytes())
    document["info"]["version"] = version
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@cache
def openapi_document() -> PageFile:
    body = openapi_body(metadata.version(DISTRIBUTION))
    return PageFile(body, hashlib.sha256(body).hexdigest()[:16])


@cache
def style_csp(template: str) -> str:
    """The admin page's policy, but the template's inline styles allowed by their hashes."""
    html = page_file("templates", template).body.decode("utf-8")
    digests = [
        base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
        for style in STYLE.findall(html)
    ]
    styles = " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            f"style-src {styles}",
            "img-src data:",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def html_page(body: str | bytes, template: str) -> Response:
    response = Response(body, mimetype="text/html")
    response.headers.update(
        {
            "Content-Security-Policy": style_csp(template),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Cache-Control": "no-cache",
        }
    )
    return response


@bp.get("/")
def home() -> Response:
    # The embed snippet names this service as the client reached it; the template escapes it.
    return html_page(render_template("home.html", host_url=request.host_url), "home.html")


@cache
def docs_index() -> PageFile:
    docs = installed_docs()
    items = Markup("").join(
        Markup('<li><a href="/docs/{}">{}</a> <code>{}</code></li>\n').format(
            doc.name, render_doc(doc, docs).title, doc.path
        )
        for doc in docs.values()
    )
    body = Markup("<h1>Documentation</h1>\n<ul>\n{}</ul>\n").format(items)
    html = render_template("doc.html", title="Documentation", body=body).encode("utf-8")
    return PageFile(html, hashlib.sha256(html).hexdigest()[:16])


@cache
def doc_page(name: str) -> PageFile:
    """The page of a doc that exists (so the cache holds one entry per doc, no more)."""
    docs = installed_docs()
    rendered = render_doc(docs[name], docs)
    body = Markup(rendered.html)  # the renderer escaped any raw HTML of the Markdown
    html = render_template("doc.html", title=rendered.title, body=body).encode("utf-8")
    return PageFile(html, hashlib.sha256(html).hexdigest()[:16])


def cached_page(found: PageFile) -> Response:
    if request.if_none_match.contains(found.etag):
        response = html_page(b"", "doc.html")
        response.status_code = 304
    else:
        response = html_page(found.body, "doc.html")
    response.headers["ETag"] = f'"{found.etag}"'
    return response


@bp.get("/docs/", strict_slashes=False)
def docs() -> Response:
    """The index of the docs; ``/docs`` answers the same, with no redirect."""
    return cached_page(docs_index())


@bp.get("/docs/<name>")
def doc(name: str) -> Response:
    if name not in installed_docs():
        raise NotFound("no such doc: see /docs/")
    return cached_page(doc_page(name))


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of every route, readable by tools on any origin."""
    found = openapi_document()
    headers = {
        "ETag": f'"{found.etag}"',
        "Cache-Control": "no-cache",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if request.if_none_match.contains(found.etag):
        return Response(status=304, headers=headers)
    return Response(found.body, mimetype="application/json", headers=headers)
