"""The admin API: who may call it, what it changes, and what it writes in the audit log."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from tests.helpers import AUTH, TOKEN, audit, call, counters, hit

ROUTES = [
    ("GET", "/api/v1/admin/sites", None),
    ("POST", "/api/v1/admin/sites", {"id": "new-site"}),
    ("GET", "/api/v1/admin/sites/demo", None),
    ("PATCH", "/api/v1/admin/sites/demo", {"name": "x"}),
    ("DELETE", "/api/v1/admin/sites/demo?confirm=demo", None),
    ("PUT", "/api/v1/admin/sites/demo/offsets", {"pageviews": 5}),
    ("GET", "/api/v1/admin/audit", None),
    ("POST", "/api/v1/admin/sites/demo/reset", {"windows": ["all"]}),
    ("POST", "/api/v1/admin/sites/demo/resets/0123456789abcdef/undo", None),
]


@pytest.fixture
def admin(admin_app: Flask) -> FlaskClient:
    return admin_app.test_client()


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "wrong-case", "prefix", "basic", "empty"],
)
def test_every_route_refuses_a_bad_token_and_audits_it(
    admin: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    before = call(admin, "GET", "/api/v1/admin/sites/demo", headers=AUTH).json
    response = call(admin, method, path, body, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["error"]["code"] == "unauthorized"
    assert "demo" not in response.get_data(as_text=True)  # nothing leaks
    assert "Access-Control-Allow-Origin" not in response.headers
    entry = audit(admin)[0]
    assert entry["action"] == "auth_failed" and entry["change"]["path"] == path.split("?")[0]
    assert call(admin, "GET", "/api/v1/admin/sites/demo", headers=AUTH).json == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_with_no_token_configured_the_admin_api_is_off(
    client: FlaskClient, method: str, path: str, body: Any
) -> None:
    for headers in ({}, AUTH):
        response = call(client, method, path, body, headers)
        assert response.status_code == 403
        assert response.json["error"]["code"] == "admin_disabled"
    assert counters(client)["site"] == "demo"  # the site is untouched


def test_failed_attempts_are_rate_limited_per_address(admin: FlaskClient) -> None:
    for _ in range(10):
        assert call(admin, "GET", "/api/v1/admin/sites").status_code == 401
    limited = call(admin, "GET", "/api/v1/admin/sites")
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    # The right token is never refused, whatever its network failed before.
    assert call(admin, "GET", "/api/v1/admin/sites", headers=AUTH).status_code == 200
    other = admin.get("/api/v1/admin/sites", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert other.status_code == 401  # another network has a count of its own


def test_sites_create_read_update(admin: FlaskClient) -> None:
    created = call(
        admin,
        "POST",
        "/api/v1/admin/sites",
        {"id": "laocai", "name": "Cổng thông tin Lào Cai", "origins": ["https://laocai.gov.vn"]},
        AUTH,
    )
    assert created.status_code == 201
    assert created.json["timezone"] == "Asia/Ho_Chi_Minh"
    again = call(admin, "POST", "/api/v1/admin/sites", {"id": "laocai"}, AUTH)
    assert again.status_code == 409
    listed = call(admin, "GET", "/api/v1/admin/sites", headers=AUTH).json["sites"]
    assert [s["id"] for s in listed] == ["demo", "laocai"]
    patched = call(admin, "PATCH", "/api/v1/admin/sites/laocai", {"week_start": "sunday"}, AUTH)
    assert patched.json["week_start"] == "sunday"
    assert patched.json["name"] == "Cổng thông tin Lào Cai"
    entries = audit(admin)
    assert [e["action"] for e in entries[:2]] == ["site_updated", "site_created"]  # newest first
    assert entries[0]["change"] == {"week_start": {"from": "monday", "to": "sunday"}}
    assert entries[0]["site"] == "laocai" and entries[0]["time"] and entries[0]["ip"]
    assert call(admin, "GET", "/api/v1/admin/sites/nope", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/admin/sites", {"id": "x", "colour": "red"}, "colour"),
        ("POST", "/api/v1/admin/sites", {"id": "Bad Id"}, "id"),
        ("POST", "/api/v1/admin/sites", {"id": "x", "timezone": "Mars/Base"}, "timezone"),
        ("POST", "/api/v1/admin/sites", {"id": "x", "origins": ["laocai.gov.vn"]}, "origins"),
        (
            "PATCH",
            "/api/v1/admin/sites/demo",
            {"online_window_seconds": -1},
            "online_window_seconds",
        ),
        ("PATCH", "/api/v1/admin/sites/demo", {"id": "other"}, "id"),
        ("PUT", "/api/v1/admin/sites/demo/offsets", {"pageviews": "12"}, "offsets.pageviews"),
        ("PUT", "/api/v1/admin/sites/demo/offsets", {"likes": 1}, "offsets.likes"),
    ],
)
def test_bad_fields_are_named(
    admin: FlaskClient, method: str, path: str, body: Any, field: str
) -> None:
    response = call(admin, method, path, body, AUTH)
    assert response.status_code == 400
    assert f"'{field}'" in response.json["error"]["message"]


def test_offsets_reach_the_counters_the_box_and_the_badge(admin: FlaskClient) -> None:
    hit(admin)
    response = call(
        admin,
        "PUT",
        "/api/v1/admin/sites/demo/offsets",
        {"pageviews": 1_532_906, "visits": 345_677},
        AUTH,
    )
    assert response.json["offsets"] == {"pageviews": 1_532_906, "visits": 345_677, "visitors": 0}
    total = counters(admin)["windows"]["total"]
    assert (total["pageviews"], total["visits"], total["visitors"]) == (1_532_907, 345_678, 1)
    assert "<dd>345.678</dd>" in admin.get("/widget/demo").get_data(as_text=True)
    assert "1.532.907" in admin.get("/badge/demo.svg?metric=pageviews").get_data(as_text=True)
    assert audit(admin)[0]["action"] == "offsets_set"


def test_delete_removes_every_key_of_the_site_and_no_other(
    admin: FlaskClient, redis_client: redis.Redis
) -> None:
    call(admin, "POST", "/api/v1/admin/sites", {"id": "other"}, AUTH)
    for site in ("demo", "other"):
        hit(admin, site)
        hit(admin, site, kind="heartbeat", ip="198.51.100.2")
    others = set(redis_client.scan_iter(match="va:{other}:*"))
    assert call(admin, "DELETE", "/api/v1/admin/sites/demo", headers=AUTH).status_code == 400
    assert (
        call(admin, "DELETE", "/api/v1/admin/sites/demo?confirm=other", headers=AUTH).status_code
        == 400
    )
    assert list(redis_client.scan_iter(match="va:{demo}:*"))  # nothing deleted yet
    deleted = call(admin, "DELETE", "/api/v1/admin/sites/demo?confirm=demo", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json["deleted"] is True
    assert list(redis_client.scan_iter(match="va:{demo}:*")) == []
    assert set(redis_client.scan_iter(match="va:{other}:*")) == others
    assert admin.get("/api/v1/sites/demo/counters").status_code == 404
    assert audit(admin)[0]["action"] == "site_deleted"


def _windows(doc: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        name: (w["pageviews"], w["visits"], w["visitors"]) for name, w in doc["windows"].items()
    }


def test_reset_then_undo_restores_the_snapshot_plus_the_hits_since(
    admin: FlaskClient, clock: FixedClock
) -> None:
    call(admin, "PUT", "/api/v1/admin/sites/demo/offsets", {"pageviews": 1000}, AUTH)
    for n in range(4):
        hit(admin, url=f"https://example.vn/{n}", ip=f"198.51.100.{n}")
    reset = call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["all"]}, AUTH)
    assert reset.status_code == 200
    before = reset.json["before"]
    assert _windows(before)["total"] == (1004, 4, 4)
    after_reset = counters(admin)
    assert _windows(after_reset)["today"] == (0, 0, 0)
    assert _windows(after_reset)["total"] == (1000, 0, 0)  # the offsets stay
    clock.advance(60)
    hit(admin, url="https://example.vn/new", ip="198.51.100.50")  # a hit between reset and undo
    undo_path = f"/api/v1/admin/sites/demo/resets/{reset.json['reset_id']}/undo"
    undone = call(admin, "POST", undo_path, headers=AUTH)
    assert undone.status_code == 200
    restored = _windows(counters(admin))
    for name in ("today", "this_week", "this_month"):
        assert restored[name] == (5, 5, 5), name
    assert restored["total"] == (1005, 5, 5)
    again = call(admin, "POST", undo_path, headers=AUTH)
    assert again.status_code == 409
    assert [e["action"] for e in audit(admin)[:2]] == ["reset_undone", "reset"]


def test_reset_of_one_window_leaves_the_others(admin: FlaskClient) -> None:
    hit(admin)
    call(admin, "POST", "/api/v1/admin/sites/demo/reset", {"windows": ["today"]}, AUTH)
    windows = _windows(counters(admin))
    assert windows["today"] == (0, 0, 0)
    assert windows["this_week"] == windows["total"] == (1, 1, 1)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/admin/sites/nope/reset", {"windows": ["all"]}, 404),
        ("/api/v1/admin/sites/demo/reset", {"windows": ["yesterday"]}, 400),
        ("/api/v1/admin/sites/demo/reset", {"windows": []}, 400),
        ("/api/v1/admin/sites/demo/reset", {"windows": "all"}, 400),
        ("/api/v1/admin/sites/demo/reset", {"windows": ["all"], "keep": 1}, 400),
        ("/api/v1/admin/sites/demo/resets/0123456789abcdef/undo", None, 404),
        ("/api/v1/admin/sites/demo/resets/ZZZZ/undo", None, 404),
    ],
)
def test_reset_and_undo_errors(admin: FlaskClient, path: str, body: Any, status: int) -> None:
    assert call(admin, "POST", path, body, AUTH).status_code == status


def test_every_wrong_token_goes_through_one_constant_time_comparison(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's timing is that of hmac.compare_digest; bench/admin_auth.py measures it."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    wrong = ["X" * len(TOKEN), TOKEN[:-1] + "X", TOKEN[:5], TOKEN + "X", TOKEN.upper()]
    for n, token in enumerate(wrong):
        response = admin.get(
            "/api/v1/admin/sites",
            headers={"Authorization": f"Bearer {token}"},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        assert response.status_code == 401
    digest = hashlib.sha256
    expected = digest(TOKEN.encode()).digest()
    assert compared == [(digest(t.encode()).digest(), expected) for t in wrong]


def test_the_timing_benchmark_runs_and_reports_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.admin_auth", "--rounds", "10"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ratio") == 8
