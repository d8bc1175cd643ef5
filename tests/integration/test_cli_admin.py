"""`analytics sites|offsets|reset|audit`: the real command, in a process of its own, on real Redis.

The command reads the system clock, so the hits these tests count are stamped with the
real time too (the fixed clock is moved to now): "today" is the same day on both sides.
"""

from __future__ import annotations

import os
import pty
import subprocess
from datetime import UTC, datetime

import pytest
import redis
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from analytics.settings import Settings
from tests.helpers import (
    ANALYTICS,
    BROWSER_UA,
    clear_of_day_change,
    counters,
    hit,
    ok_json,
    run_cli,
)


@pytest.fixture(autouse=True)
def now(clock: FixedClock) -> FixedClock:
    """The app's clock at the real time, which the command reads: not just before a day change."""
    clear_of_day_change()
    clock.set(datetime.now(UTC))
    return clock


def test_sites_add_list_show_update(settings: Settings, client: FlaskClient) -> None:
    created = ok_json(
        settings,
        "sites",
        "add",
        "tin-tuc",
        "--name",
        "Tin tức",
        "--timezone",
        "Europe/Berlin",
        "--origin",
        "https://tintuc.example",
        "--origin",
        "https://www.tintuc.example/",
        "--box-metric",
        "pageviews",
    )
    assert created["id"] == "tin-tuc" and created["name"] == "Tin tức"
    assert created["origins"] == ["https://tintuc.example", "https://www.tintuc.example"]
    assert created["timezone"] == "Europe/Berlin" and created["box_metric"] == "pageviews"
    listed = ok_json(settings, "sites", "list")["sites"]
    assert [s["id"] for s in listed] == ["demo", "tin-tuc"]
    assert listed[1]["counters"]["windows"]["total"]["pageviews"] == 0

    assert hit(client, "tin-tuc", headers={"Origin": "https://tintuc.example"}) == 204
    table = run_cli(settings, "sites", "list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "name", "timezone", "metric", "online", "today", "total"]
    assert rows[1].split()[0] == "tin-tuc" and rows[1].split()[-3:] == ["1", "1", "1"]

    shown = run_cli(settings, "sites", "show", "tin-tuc")
    assert "Europe/Berlin" in shown.stdout and "online now: 1" in shown.stdout
    assert [line.split() for line in shown.stdout.splitlines() if line.startswith("today")] == [
        ["today", "1", "1", "1"]
    ]

    updated = ok_json(settings, "sites", "update", "tin-tuc", "--any-origin", "--ignore-gpc")
    assert updated["origins"] == [] and updated["honor_gpc"] is False
    assert updated["timezone"] == "Europe/Berlin"  # fields not given are kept


def test_bad_input_is_named_and_exits_2(settings: Settings, client: FlaskClient) -> None:
    cases = [
        (("sites", "add", "Bad_Id"), "'id' must match"),
        (("sites", "add", "demo"), "exists already"),
        (("sites", "add", "x", "--timezone", "Mars/Olympus"), "'timezone'"),
        (("sites", "add", "x", "--origin", "ftp://x"), "'origins'"),
        (("sites", "update", "demo", "--online-window", "5"), "'online_window_seconds'"),
        (("sites", "update", "demo"), "nothing to change"),
        (("offsets", "demo", "--visits", "-1"), "'offsets.visits'"),
        (("reset", "demo", "--yes"), "--window"),
        (("reset", "demo", "--window", "yesterday", "--yes"), "yesterday"),
        (("sites", "delete", "demo"), "--confirm demo"),
        (("sites", "delete", "demo", "--confirm", "other"), "--confirm demo"),
        (("reset", "demo", "--all"), "add --yes"),  # no terminal to ask on
    ]
    for args, message in cases:
        result = run_cli(settings, *args)
        expected = 4 if "exists" in message else 2
        assert result.returncode == expected, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""
    assert counters(client)["site"] == "demo"  # nothing above deleted it


def test_unknown_site_or_reset_exits_3(settings: Settings, client: FlaskClient) -> None:
    for args in [
        ("sites", "show", "nope"),
        ("offsets", "nope"),
        ("reset", "nope", "--window", "today", "--yes"),
        ("reset", "demo", "--undo", "0123456789abcdef"),
        ("reset", "demo", "--undo", "not-a-reset-id"),
    ]:
        result = run_cli(settings, *args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("analytics: ")


def test_redis_down_exits_5_with_a_clear_message(settings: Settings) -> None:
    result = run_cli(settings, "sites", "list", redis_url="redis://127.0.0.1:1/0")
    assert result.returncode == 5
    assert "Redis" in result.stderr and "Traceback" not in result.stderr


def test_offsets_show_and_replace_all_three(settings: Settings, client: FlaskClient) -> None:
    assert ok_json(settings, "offsets", "demo") == {"pageviews": 0, "visits": 0, "visitors": 0}
    hit(client)
    set_ = ok_json(settings, "offsets", "demo", "--pageviews", "1532907", "--visits", "345678")
    assert set_ == {"pageviews": 1532907, "visits": 345678, "visitors": 0}
    total = counters(client)["windows"]["total"]
    assert (total["pageviews"], total["visits"], total["visitors"]) == (1532908, 345679, 1)
    # Replacing: a metric not given becomes 0, as in the API.
    assert ok_json(settings, "offsets", "demo", "--visitors", "9") == {
        "pageviews": 0,
        "visits": 0,
        "visitors": 9,
    }
    table = run_cli(settings, "offsets", "demo", "--pageviews", "1532907")
    assert table.returncode == 0 and "1,532,907" in table.stdout


def test_reset_then_undo_restores_the_snapshot_plus_the_hits_since(
    settings: Settings, client: FlaskClient
) -> None:
    ok_json(settings, "offsets", "demo", "--pageviews", "1000")
    for n in range(3):
        hit(client, url=f"https://example.vn/{n}", ip=f"203.0.113.{n + 1}")
    before = counters(client)
    reset = ok_json(settings, "reset", "demo", "--window", "today", "--window", "total", "--yes")
    assert reset["before"]["windows"] == before["windows"]
    emptied = counters(client)["windows"]
    assert emptied["today"]["pageviews"] == 0
    assert emptied["total"]["pageviews"] == 1000  # the offsets stay
    assert emptied["this_week"] == before["windows"]["this_week"]  # not asked for

    hit(client, url="https://example.vn/after", ip="198.51.100.20")
    undone = ok_json(settings, "reset", "demo", "--undo", reset["reset_id"])
    assert undone["undone"] is True
    after = counters(client)["windows"]
    assert after["today"]["pageviews"] == before["windows"]["today"]["pageviews"] + 1
    assert after["today"]["visitors"] == before["windows"]["today"]["visitors"] + 1
    assert after["total"]["pageviews"] == before["windows"]["total"]["pageviews"] + 1

    again = run_cli(settings, "reset", "demo", "--undo", reset["reset_id"])
    assert again.returncode == 4 and "undone already" in again.stderr


def on_terminal(settings: Settings, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the command with a terminal (a pty) as stdin, and ``answer`` typed on it."""
    main, terminal = pty.openpty()
    try:
        os.write(main, answer.encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
        env["ANALYTICS_REDIS_URL"] = str(settings.redis_url)
        return subprocess.run(
            [ANALYTICS, *args],
            env=env,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(main)
        os.close(terminal)


def test_reset_asks_first_on_a_terminal_unless_yes(settings: Settings, client: FlaskClient) -> None:
    hit(client)
    unknown = on_terminal(settings, "y\n", "reset", "nope", "--all")
    assert unknown.returncode == 3 and "?" not in unknown.stderr  # said before asking
    declined = on_terminal(settings, "n\n", "reset", "demo", "--all")
    assert declined.returncode == 1 and "Empty all of site 'demo'?" in declined.stderr
    assert counters(client)["windows"]["today"]["pageviews"] == 1
    accepted = on_terminal(settings, "y\n", "reset", "demo", "--all")
    assert accepted.returncode == 0, accepted.stderr
    assert counters(client)["windows"]["today"]["pageviews"] == 0
    reset_id = accepted.stdout.rsplit("--undo ", 1)[1].strip()
    assert "the counters before it" in accepted.stdout
    undo = run_cli(settings, "reset", "demo", "--undo", reset_id)
    assert undo.returncode == 0, undo.stderr
    assert counters(client)["windows"]["today"]["pageviews"] == 1


def test_delete_removes_every_key_and_is_audited(
    settings: Settings, client: FlaskClient, redis_client: redis.Redis
) -> None:
    ok_json(settings, "sites", "add", "other")
    hit(client)
    assert hit(client, "other", "https://other.example/") == 204
    others = set(redis_client.scan_iter(match="va:{other}:*"))
    assert others and list(redis_client.scan_iter(match="va:{demo}:*"))
    deleted = ok_json(settings, "sites", "delete", "demo", "--confirm", "demo")
    assert deleted["deleted"] is True and deleted["keys"] > 0
    assert list(redis_client.scan_iter(match="va:{demo}:*")) == []
    assert set(redis_client.scan_iter(match="va:{other}:*")) == others
    assert run_cli(settings, "sites", "show", "demo").returncode == 3

    entries = ok_json(settings, "audit")["entries"]
    assert [e["action"] for e in entries[:2]] == ["site_deleted", "site_created"]
    assert entries[0]["site"] == "demo" and entries[0]["ip"].startswith("cli:")
    table = run_cli(settings, "audit", "--limit", "1")
    assert table.stdout.splitlines()[0].split() == ["time", "action", "site", "by", "change"]
    assert len(table.stdout.splitlines()) == 2 and "site_deleted" in table.stdout


def test_pages_and_referrers_list_the_top_of_a_window(
    settings: Settings, client: FlaskClient
) -> None:
    for n, (path, referrer) in enumerate(
        [("/a", "https://google.com/"), ("/a", "https://www.google.com/x"), ("/b", None)]
    ):
        body = {"site": "demo", "url": f"https://example.vn{path}"}
        if referrer:
            body["referrer"] = referrer
        response = client.post(
            "/api/v1/hit",
            json=body,
            headers={"User-Agent": BROWSER_UA},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        assert response.status_code == 204
    found = ok_json(settings, "pages", "demo", "--window", "total", "--limit", "1")
    assert found == {
        "site": "demo",
        "window": "total",
        "start": None,
        "pages": [{"path": "/a", "pageviews": 2}],
    }
    text = run_cli(settings, "pages", "demo")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("demo: today (since ")
    assert lines[1].split() == ["path", "pageviews"]
    assert [line.split() for line in lines[2:]] == [["/a", "2"], ["/b", "1"]]
    text = run_cli(settings, "referrers", "demo", "--window", "this_week")
    assert [line.split() for line in text.stdout.splitlines()[2:]] == [["google.com", "2"]]
    assert run_cli(settings, "pages", "nope").returncode == 3
    assert run_cli(settings, "pages", "demo", "--window", "tomorrow").returncode == 2
    assert run_cli(settings, "referrers", "demo", "--limit", "101").returncode == 2
