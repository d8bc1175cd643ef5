"""The admin page: one static HTML page, its script, its style and the box's labels, under a
strict CSP.

The page holds no data and loads without a token; its script asks for the token and keeps
it in memory for the tab, then calls the admin and read APIs of the same origin. The names of
the windows and metrics, and the number format, are the box's own (render.py), served as
``/admin/labels.json`` so that the page and the box cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from flask import Blueprint, Response, request

from analytics.render import LABELS, format_count

bp = Blueprint("admin_page", __name__)

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ASSET_TYPES = {
    "admin.js": "application/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class PageFile:
    body: bytes
    etag: str


@cache
def page_file(folder: str, name: str) -> PageFile:
    body = resources.files("analytics").joinpath(folder, name).read_bytes()
    return PageFile(body, hashlib.sha256(body).hexdigest()[:16])


@cache
def labels_file() -> PageFile:
    """The box's labels in each language, and the separator its numbers are grouped with."""
    data = {
        lang: {"labels": labels, "group": format_count(1000, lang)[1]}
        for lang, labels in LABELS.items()
    }
    body = json.dumps(data, ensure_ascii=False, sort_keys=True).encode()
    return PageFile(body, hashlib.sha256(body).hexdigest()[:16])


@bp.get("/admin")
def page() -> Response:
    response = Response(page_file("templates", "admin.html").body, mimetype="text/html")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/<any('admin.js', 'admin.css'):name>")
def asset(name: str) -> Response:
    """The script and the style: revalidated on each load, so a new version is used at once."""
    return _revalidated(page_file("static", name), ASSET_TYPES[name])


@bp.get("/admin/labels.json")
def labels() -> Response:
    return _revalidated(labels_file(), "application/json")


def _revalidated(found: PageFile, content_type: str) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": f'"{found.etag}"', "Cache-Control": "no-cache"}
    if request.if_none_match.contains(found.etag):
        return Response(status=304, headers=headers)
    response = Response(found.body, headers=headers)
    response.headers["Content-Type"] = content_type
    return response
