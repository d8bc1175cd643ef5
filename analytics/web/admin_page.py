"""The admin page: one static HTML page, its script and its style, under a strict CSP.

The page holds no data and loads without a token; its script asks for the token and keeps
it in memory for the tab, then calls the admin and read APIs of the same origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from flask import Blueprint, Response, request

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


@bp.get("/admin")
def page() -> Response:
    response = Response(page_file("templates", "admin.html").body, mimetype="text/html")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/admin/<any('admin.js', 'admin.css'):name>")
def asset(name: str) -> Response:
    """The script and the style: revalidated on each load, so a new version is used at once."""
    found = page_file("static", name)
    headers = {**SECURITY_HEADERS, "ETag": f'"{found.etag}"', "Cache-Control": "no-cache"}
    if request.if_none_match.contains(found.etag):
        return Response(status=304, headers=headers)
    response = Response(found.body, headers=headers)
    response.headers["Content-Type"] = ASSET_TYPES[name]
    return response
