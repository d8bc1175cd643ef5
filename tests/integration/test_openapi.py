"""/openapi.json: a valid OpenAPI 3.1 document of exactly the app's routes, whose schemas
the real answers match."""

from __future__ import annotations

import json
import re
from importlib import metadata, resources
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from analytics.services import Services
from analytics.settings import Settings
from analytics.web import beacon
from analytics.web.home import openapi_body
from tests.helpers import hit

IGNORED = {"HEAD"}
ANY = re.compile(r"<any\(([^)]*)\):\w+>")
VARIABLE = re.compile(r"<(?:\w+:)?(\w+)>")
OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
TOKEN = "an-admin-token-of-some-length"
WINDOWS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "total")


def document() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        resources.files("analytics").joinpath("openapi.json").read_text("utf-8")
    )
    return found


def served_document() -> dict[str, Any]:
    """The document as served: the file's, ``info.version`` the package's."""
    doc = document()
    doc["info"]["version"] = metadata.version("visit-analytics")
    return doc


def openapi_paths(rule: str) -> list[str]:
    """A Flask rule as OpenAPI paths: ``<site_id>`` is ``{site_id}``; an ``any(...)`` converter
    is one path per choice."""
    found = ANY.search(rule)
    if found is not None:
        choices = [c.strip().strip("'\"") for c in found.group(1).split(",")]
        return [p for c in choices for p in openapi_paths(rule.replace(found.group(0), c))]
    return [VARIABLE.sub(r"{\1}", rule)]


def served(app: Flask) -> set[tuple[str, str]]:
    """(path, method) of every route: the beacon's, answered before Flask, and Flask's, OPTIONS
    only where a view answers it, not Flask's own."""
    pairs = {(path, method.lower()) for path, method in beacon.ROUTES}
    for rule in app.url_map.iter_rules():
        methods = set(rule.methods or ()) - IGNORED
        if getattr(rule, "provide_automatic_options", False):
            methods.discard("OPTIONS")
        pairs |= {(path, m.lower()) for path in openapi_paths(rule.rule) for m in methods}
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, m) for path, item in doc["paths"].items() for m in item if m in OPERATIONS}


def check(doc: dict[str, Any], schema: str, answer: Any) -> None:
    """Validates ``answer`` against a schema of the document's components."""
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(answer)]
    assert not errors, f"{schema}: {errors}"


def test_the_document_is_valid_openapi() -> None:
    doc = document()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"].startswith("3.1")


def test_every_route_is_documented_and_every_documented_route_exists(app: Flask) -> None:
    real, doc = served(app), documented(document())
    assert ("/api/v1/sites/{site_id}/counters", "get") in real  # the conversion works
    assert ("/admin/admin.js", "get") in real and ("/api/v1/hit", "options") in real
    assert ("/widget.js", "options") not in real  # Flask's automatic OPTIONS is left out
    assert real - doc == set(), "routes the document lacks"
    assert doc - real == set(), "documented routes the app does not serve"


def test_the_route_comparison_sees_a_missing_and_an_extra_route(app: Flask) -> None:
    doc = document()
    del doc["paths"]["/healthz"]
    doc["paths"]["/api/v1/sites/{site_id}/visitors"] = {"get": {"responses": {}}}
    real, listed = served(app), documented(doc)
    assert real - listed == {("/healthz", "get")}
    assert listed - real == {("/api/v1/sites/{site_id}/visitors", "get")}


def test_it_is_served_uncached_to_any_origin(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.get_json() == served_document()
    again = client.get("/openapi.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.headers["Cache-Control"] == "no-cache"


def test_the_served_version_is_the_packages(client: FlaskClient) -> None:
    served = client.get("/openapi.json").get_json()
    assert served["info"]["version"] == metadata.version("visit-analytics")
    # The file holds no version of its own that could fall behind the package's.
    assert document()["info"]["version"] != served["info"]["version"]


def test_the_version_is_filled_in_and_the_rest_kept() -> None:
    filled = json.loads(openapi_body("9.8.7"))
    assert filled["info"]["version"] == "9.8.7"
    assert {**filled, "info": {**filled["info"], "version": "x"}} == {
        **document(),
        "info": {**document()["info"], "version": "x"},
    }


def test_the_counters_and_history_answers_match_their_schemas(client: FlaskClient) -> None:
    doc = document()
    assert hit(client) == 204
    counters = client.get("/api/v1/sites/demo/counters").get_json()
    assert counters["windows"]["today"]["pageviews"] == 1
    check(doc, "Counters", counters)
    history = client.get("/api/v1/sites/demo/history?from=2026-11-20&to=2026-11-26").get_json()
    check(doc, "History", history)


def test_the_schemas_reject_what_does_not_match() -> None:
    """The schema checks can fail: a missing window, a string count, an unknown error code."""
    doc = document()
    day = {"start": "2026-11-26", "pageviews": 1, "visits": 1, "visitors": 1}
    good = {
        "site": "demo",
        "timezone": "Asia/Ho_Chi_Minh",
        "as_of": "2026-11-26T22:01:05+07:00",
        "box_metric": "visits",
        "online": 1,
        "windows": {w: dict(day) for w in WINDOWS},
    }
    check(doc, "Counters", good)
    del good["windows"]["last_month"]
    with pytest.raises(AssertionError, match="last_month"):
        check(doc, "Counters", good)
    with pytest.raises(AssertionError):
        check(doc, "WindowCounts", {**day, "pageviews": "1"})
    with pytest.raises(AssertionError):
        check(doc, "Error", {"error": {"code": "no_such_code", "message": "x"}})


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/sites/nope/counters", 404, "unknown_site"),
        ("/api/v1/sites/demo/history?from=2026-11-30&to=2026-11-01", 400, "invalid_request"),
        ("/badge/demo.svg?window=forever", 400, "invalid_request"),
        ("/no/such/route", 404, "not_found"),
        ("/api/v1/admin/sites", 401, "unauthorized"),  # the module's app has a token
    ],
)
def test_error_answers_match_the_error_schema(
    client: FlaskClient, path: str, status: int, code: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"]["code"] == code
    check(document(), "Error", body)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(admin_token=TOKEN)


def test_admin_answers_match_their_schemas(client: FlaskClient, services: Services) -> None:
    doc = document()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = client.post(
        "/api/v1/admin/sites",
        json={
            "id": "laocai",
            "name": "Cổng thông tin Lào Cai",
            "origins": ["https://laocai.gov.vn"],
        },
        headers=auth,
    )
    assert created.status_code == 201
    check(doc, "Site", created.get_json())
    listed = client.get("/api/v1/admin/sites", headers=auth).get_json()
    for site in listed["sites"]:
        check(doc, "Site", site)
    reset = client.post("/api/v1/admin/sites/demo/reset", json={"windows": ["all"]}, headers=auth)
    check(doc, "ResetDone", reset.get_json())
    undo = client.post(
        f"/api/v1/admin/sites/demo/resets/{reset.get_json()['reset_id']}/undo", headers=auth
    )
    check(doc, "UndoDone", undo.get_json())
    wrong = client.get("/api/v1/admin/sites", headers={"Authorization": "Bearer wrong-token!!!!!"})
    assert wrong.status_code == 401
    check(doc, "Error", wrong.get_json())
    for entry in client.get("/api/v1/admin/audit", headers=auth).get_json()["entries"]:
        check(doc, "AuditEntry", entry)
    deleted = client.delete("/api/v1/admin/sites/laocai?confirm=laocai", headers=auth)
    check(doc, "Deleted", deleted.get_json())
