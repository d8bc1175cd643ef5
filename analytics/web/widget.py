"""What a site's visitors see: the embed script, the box for an iframe, the badge, the demo."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from flask import Blueprint, Response, request

from analytics.reading import Counters
from analytics.render import badge_for, box_options, box_page
from analytics.services import Services

SCRIPT_MAX_AGE = 3600
VERSIONED_MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    version: str


@cache
def widget_script() -> Asset:
    # Built from static/src/widget.js by analytics/widget_build.py; a test keeps them in step.
    body = resources.files("analytics").joinpath("static", "widget.js").read_bytes()
    return Asset(body, gzip.compress(body, 9, mtime=0), hashlib.sha256(body).hexdigest()[:12])


@cache
def demo_page() -> str:
    return resources.files("analytics").joinpath("templates", "demo.html").read_text("utf-8")


INERT_PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'"
"""For the box and the badge: pages that run nothing and load nothing."""


def blueprint(svc: Services) -> Blueprint:
    """The widget routes over ``svc``: the script, the box, the badge and the demo."""
    bp = Blueprint("widget", __name__)

    def _counters_of(site_id: str) -> Counters:
        return svc.reading.counters(site_id)

    @bp.get("/widget.js")
    def script() -> Response:
        asset = widget_script()
        etag = f'"{asset.version}"'
        versioned = request.args.get("v") == asset.version
        cache_control = (
            f"public, max-age={VERSIONED_MAX_AGE}, immutable"
            if versioned
            else f"public, max-age={SCRIPT_MAX_AGE}"
        )
        headers = {
            "ETag": etag,
            "Cache-Control": cache_control,
            "Vary": "Accept-Encoding",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        }
        if request.if_none_match.contains(asset.version):
            return Response(status=304, headers=headers)
        if request.accept_encodings["gzip"]:
            response = Response(asset.gzipped, headers=headers)
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = Response(asset.body, headers=headers)
        response.headers["Content-Type"] = "application/javascript; charset=utf-8"
        return response

    @bp.get("/widget/<site_id>")
    def box(site_id: str) -> Response:
        doc = _counters_of(site_id)
        options = box_options(request.args)
        page = doc.rendered(("box", options), lambda: box_page(doc, options))
        response = Response(page, mimetype="text/html")
        response.headers["Cache-Control"] = "public, max-age=10"
        # A page for iframes on any site, which runs nothing and loads nothing.
        response.headers["Content-Security-Policy"] = INERT_PAGE_POLICY
        return response

    @bp.get("/badge/<site_id>.svg")
    def badge(site_id: str) -> Response:
        doc = _counters_of(site_id)
        args = request.args.to_dict()
        svg = doc.rendered(("badge", *sorted(args.items())), lambda: badge_for(doc, args))
        response = Response(svg, mimetype="image/svg+xml")
        response.headers["Cache-Control"] = "public, max-age=30"
        response.headers["Content-Security-Policy"] = INERT_PAGE_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @bp.get("/demo")
    def demo() -> Response:
        return Response(demo_page(), mimetype="text/html")

    return bp
