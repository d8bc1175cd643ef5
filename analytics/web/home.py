"""The front door: a page of links at ``/`` and the OpenAPI document at ``/openapi.json``."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from importlib import metadata, resources

from flask import Blueprint, Response, render_template, request

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
def home_csp() -> str:
    """The admin page's policy, but the page's one inline style allowed by its hash."""
    html = page_file("templates", "home.html").body.decode("utf-8")
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


@bp.get("/")
def home() -> Response:
    # The embed snippet names this service as the client reached it; the template escapes it.
    html = render_template("home.html", host_url=request.host_url)
    response = Response(html, mimetype="text/html")
    response.headers.update(
        {
            "Content-Security-Policy": home_csp(),
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Cache-Control": "no-cache",
        }
    )
    return response


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
