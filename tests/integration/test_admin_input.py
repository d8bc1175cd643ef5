"""The admin API parses its bodies into typed values before the admin service acts: an unknown
site is still said before what is wrong with the body, and a body that is no JSON before both."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.settings import Settings
from tests.helpers import AUTH, TOKEN, call


@pytest.fixture
def admin(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> FlaskClient:
    app = create_app(settings.replace(admin_token=TOKEN), clock=clock, registry=CollectorRegistry())
    return app.test_client()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v1/admin/sites/{}", {"colour": "red"}),
        ("PATCH", "/api/v1/admin/sites/{}", ["name"]),
        ("PUT", "/api/v1/admin/sites/{}/offsets", {"pageviews": -1}),
        ("POST", "/api/v1/admin/sites/{}/reset", {"windows": ["yesterday"]}),
        ("POST", "/api/v1/admin/sites/{}/reset", {"windows": "all"}),
    ],
)
def test_a_bad_body_is_400_on_a_site_and_404_on_no_site(
    admin: FlaskClient, method: str, path: str, body: Any
) -> None:
    bad = call(admin, method, path.format("demo"), body, AUTH)
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_request"
    unknown = call(admin, method, path.format("nope"), body, AUTH)
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "unknown_site"


def test_a_body_that_is_no_json_is_400_even_on_no_site(admin: FlaskClient) -> None:
    response = admin.patch(
        "/api/v1/admin/sites/nope", data="{", content_type="application/json", headers=AUTH
    )
    assert response.status_code == 400


def test_reset_all_and_duplicates_name_each_window_once(admin: FlaskClient) -> None:
    call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["all"]}, AUTH)
    call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["today", "today"]}, AUTH)
    entries = call(admin, "GET", "/api/v1/admin/audit", headers=AUTH).json["entries"]
    assert [e["change"]["windows"] for e in entries[:2]] == [
        ["today"],
        ["today", "this_week", "this_month", "total"],
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_an_admin_body_with_nan_or_infinity_is_no_json(admin: FlaskClient, constant: str) -> None:
    response = admin.post(
        "/api/v1/admin/sites",
        data=f'{{"id": "nan-site", "online_window_seconds": {constant}}}',
        content_type="application/json",
        headers=AUTH,
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"
