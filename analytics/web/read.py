"""The read API: a site's counters, its daily history, its top pages and referrers and one
page's counts, readable from any origin."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from analytics.history import parse_range
from analytics.pages import check_limit, check_window, wanted_path
from analytics.services import Services


def blueprint(svc: Services) -> Blueprint:
    """The read API over ``svc``: counters and history, readable cross-origin."""
    bp = Blueprint("read", __name__)

    @bp.get("/api/v1/sites/<site_id>/counters")
    def counters(site_id: str) -> Response:
        doc = svc.reading.counters(site_id)
        response = Response(doc.json_bytes, mimetype="application/json")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/api/v1/sites/<site_id>/history")
    def history(site_id: str) -> Response:
        svc.sites.get(site_id)  # an unknown site is a 404 before a bad range is a 400
        first, last = parse_range(request.args.get("from"), request.args.get("to"))
        response = jsonify({"site": site_id, "days": svc.history.days(site_id, first, last)})
        response.headers["Cache-Control"] = "no-cache"
        return response

    def listing(kind: str, site_id: str) -> Response:
        svc.sites.get(site_id)  # an unknown site is a 404 before a bad parameter is a 400
        window = check_window(request.args.get("window"))
        limit = check_limit(request.args.get("limit"))
        found = svc.pages.top(kind, site_id, window, limit)
        name = "path" if kind == "pages" else "host"
        response = jsonify(
            {
                "site": site_id,
                "window": found.window,
                "start": found.start,
                kind: [{name: entry, "pageviews": views} for entry, views in found.entries],
            }
        )
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/api/v1/sites/<site_id>/pages")
    def pages(site_id: str) -> Response:
        return listing("pages", site_id)

    @bp.get("/api/v1/sites/<site_id>/referrers")
    def referrers(site_id: str) -> Response:
        return listing("referrers", site_id)

    @bp.get("/api/v1/sites/<site_id>/page")
    def page(site_id: str) -> Response:
        svc.sites.get(site_id)
        path = wanted_path(request.args.get("path"))
        response = jsonify(svc.pages.page(site_id, path))
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.after_request
    def readable_cross_origin(response: Response) -> Response:
        """Every answer of the read API, errors included, is readable by a widget on any site."""
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    return bp
