"""Reading: the counters document of a site."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from analytics.errors import UnknownSite
from analytics.services import services
from analytics.sites import valid_site_id

bp = Blueprint("read", __name__)


@bp.get("/api/v1/sites/<site_id>/counters")
def counters(site_id: str) -> Response:
    if not valid_site_id(site_id):
        raise UnknownSite(site_id[:80])
    response = jsonify(services().counter.counters(site_id))
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response
