"""GET /api/v1/sites/{site}/history and `analytics history`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import hit

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")
ANALYTICS = str(Path(sys.executable).parent / "analytics")


def history(client: FlaskClient, site: str = "demo", **query: str) -> tuple[int, Any]:
    response = client.get(f"/api/v1/sites/{site}/history", query_string=query)
    return response.status_code, response.get_json()


def test_days_with_no_traffic_are_zeros_and_today_is_live(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    clock.set(datetime(2026, 11, 24, 10, tzinfo=HCM))
    hit(client, url="https://example.vn/a")
    clock.set(datetime(2026, 11, 26, 10, tzinfo=HCM))
    services.housekeeper.run_all()  # the 24th is now frozen
    hit(client, url="https://example.vn/b")
    hit(client, url="https://example.vn/c", ip="198.51.100.3")
    status, body = history(client, **{"from": "2026-11-23", "to": "2026-11-27"})
    assert status == 200
    assert body == {
        "site": "demo",
        "days": [
            {"date": "2026-11-23", "pageviews": 0, "visits": 0, "visitors": 0},
            {"date": "2026-11-24", "pageviews": 1, "visits": 1, "visitors": 1},
            {"date": "2026-11-25", "pageviews": 0, "visits": 0, "visitors": 0},
            {"date": "2026-11-26", "pageviews": 2, "visits": 2, "visitors": 2},
            {"date": "2026-11-27", "pageviews": 0, "visits": 0, "visitors": 0},
        ],
    }


def test_a_range_across_a_dst_change_has_one_entry_per_local_day(
    client: FlaskClient, services: Services, clock: FixedClock
) -> None:
    services.sites.upsert({"id": "berlin", "timezone": "Europe/Berlin"})
    # 2026-03-29 has 23 hours: a hit in its first and last minute, one on either side.
    moments = [(28, 23, 59), (29, 0, 0), (29, 23, 59), (30, 0, 0)]
    for n, (day, hour, minute) in enumerate(moments):
        clock.set(datetime(2026, 3, day, hour, minute, tzinfo=BERLIN))
        hit(client, "berlin", url=f"https://example.de/{n}", ip=f"198.51.100.{n}")
    clock.set(datetime(2026, 3, 31, 12, tzinfo=BERLIN))
    services.housekeeper.run_all()
    status, body = history(client, "berlin", **{"from": "2026-03-28", "to": "2026-03-30"})
    assert status == 200
    assert [(d["date"], d["pageviews"]) for d in body["days"]] == [
        ("2026-03-28", 1),
        ("2026-03-29", 2),
        ("2026-03-30", 1),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "from"),
        ({"from": "2026-11-01"}, "to"),
        ({"from": "2026-11-1", "to": "2026-11-02"}, "from"),
        ({"from": "2026-13-01", "to": "2027-01-02"}, "from"),
        ({"from": "yesterday", "to": "2026-11-02"}, "from"),
        ({"from": "2026-W48-4", "to": "2026-11-30"}, "from"),  # ISO week date
        ({"from": "20261126ab", "to": "2026-11-30"}, "from"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "to"),  # reversed
        ({"from": "2025-01-01", "to": "2026-01-02"}, "to"),  # 367 days
    ],
)
def test_bad_ranges_are_400(client: FlaskClient, query: dict[str, str], field: str) -> None:
    status, body = history(client, **query)
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert f"'{field}'" in body["error"]["message"]


def test_366_days_is_allowed_and_unknown_sites_are_404(client: FlaskClient) -> None:
    status, body = history(client, **{"from": "2024-01-01", "to": "2024-12-31"})  # leap year
    assert status == 200 and len(body["days"]) == 366
    status, body = history(client, "nope", **{"from": "2026-01-01", "to": "2026-01-02"})
    assert status == 404 and body["error"]["code"] == "unknown_site"


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env["ANALYTICS_REDIS_URL"] = str(settings.redis_url)
    return subprocess.run(
        [ANALYTICS, "history", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cli_prints_csv_and_json(
    client: FlaskClient, settings: Settings, clock: FixedClock
) -> None:
    # The CLI reads the real clock: a day long past is closed or not, and reads the same.
    clock.set(datetime(2026, 1, 2, 10, tzinfo=HCM))
    hit(client)
    csv = _cli(settings, "demo", "--from", "2026-01-01", "--to", "2026-01-03")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines() == [
        "date,pageviews,visits,visitors",
        "2026-01-01,0,0,0",
        "2026-01-02,1,1,1",
        "2026-01-03,0,0,0",
    ]
    out = _cli(settings, "demo", "--from", "2026-01-02", "--to", "2026-01-02", "--format", "json")
    assert json.loads(out.stdout) == {
        "site": "demo",
        "days": [{"date": "2026-01-02", "pageviews": 1, "visits": 1, "visitors": 1}],
    }


def test_the_cli_refuses_bad_ranges_and_unknown_sites(
    settings: Settings, client: FlaskClient
) -> None:
    backwards = _cli(settings, "demo", "--from", "2026-01-03", "--to", "2026-01-01")
    assert backwards.returncode == 2
    assert "'to' is before 'from'" in backwards.stderr
    too_long = _cli(settings, "demo", "--from", "2025-01-01", "--to", "2026-01-02")
    assert too_long.returncode == 2 and "366" in too_long.stderr
    unknown = _cli(settings, "nope", "--from", "2026-01-01", "--to", "2026-01-01")
    assert unknown.returncode == 3
    assert "site 'nope' is not registered" in unknown.stderr
