"""Each metric in each window, in the site's timezone, across every kind of boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from analytics.services import Services
from tests.helpers import counters, hit

HCM = "Asia/Ho_Chi_Minh"
BERLIN = "Europe/Berlin"


def at(clock: FixedClock, local: str, tz: str = HCM) -> None:
    """Moves the clock to a local wall-clock time (``fold`` 0 for an ambiguous one)."""
    clock.set(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)))


def at_utc(clock: FixedClock, instant: str) -> None:
    clock.set(datetime.fromisoformat(instant + "+00:00"))


def views(doc: dict[str, Any], name: str) -> tuple[str | None, int, int, int]:
    w = doc["windows"][name]
    return w["start"], w["pageviews"], w["visits"], w["visitors"]


def register(services: Services, site_id: str, **fields: Any) -> None:
    services.sites.upsert({"id": site_id, **fields})


def test_every_window_of_a_fresh_hit(client: FlaskClient) -> None:
    assert hit(client) == 204
    doc = counters(client)
    assert doc["timezone"] == HCM and doc["box_metric"] == "visits"
    expected = {
        "today": ("2026-11-26", 1, 1, 1),
        "yesterday": ("2026-11-25", 0, 0, 0),
        "this_week": ("2026-11-23", 1, 1, 1),
        "last_week": ("2026-11-16", 0, 0, 0),
        "this_month": ("2026-11-01", 1, 1, 1),
        "last_month": ("2026-10-01", 0, 0, 0),
        "total": (None, 1, 1, 1),
    }
    assert {name: views(doc, name) for name in expected} == expected
    assert list(doc["windows"]) == list(expected)


def test_local_midnight_starts_a_new_day_without_a_reset(
    client: FlaskClient, clock: FixedClock
) -> None:
    at(clock, "2026-11-26T23:59:59.999")
    hit(client, url="https://example.vn/a")
    at(clock, "2026-11-27T00:00:00")
    hit(client, url="https://example.vn/b")
    doc = counters(client)
    assert doc["as_of"] == "2026-11-27T00:00:00+07:00"
    assert views(doc, "today")[:2] == ("2026-11-27", 1)
    assert views(doc, "yesterday")[:2] == ("2026-11-26", 1)
    assert views(doc, "this_week")[:2] == ("2026-11-23", 2)
    assert views(doc, "total")[1] == 2
    # Midnight in Vietnam is 17:00 UTC: the UTC date plays no part.
    at_utc(clock, "2026-11-27T16:59:59")
    assert views(counters(client), "today")[:2] == ("2026-11-27", 1)


def test_the_salt_rotates_at_local_midnight(client: FlaskClient, clock: FixedClock) -> None:
    """The same person is a new visitor (and visit) on a new local day, as in Plausible."""
    at(clock, "2026-11-26T23:59:00")
    hit(client, url="https://example.vn/a")
    at(clock, "2026-11-27T00:01:00")
    hit(client, url="https://example.vn/b")
    doc = counters(client)
    assert views(doc, "this_week")[1:] == (2, 2, 2)
    assert views(doc, "today")[1:] == (1, 1, 1)


def test_week_and_month_boundaries(client: FlaskClient, clock: FixedClock) -> None:
    at(clock, "2026-11-29T23:59:59")  # a Sunday: last day of a Monday week
    hit(client, url="https://example.vn/sun")
    at(clock, "2026-11-30T00:00:00")  # Monday, last day of November
    hit(client, url="https://example.vn/mon")
    # One person, but each local day has its own salt: a new visitor and visit every day.
    doc = counters(client)
    assert views(doc, "this_week") == ("2026-11-30", 1, 1, 1)
    assert views(doc, "last_week") == ("2026-11-23", 1, 1, 1)
    assert views(doc, "this_month") == ("2026-11-01", 2, 2, 2)
    at(clock, "2026-12-01T00:00:00")
    hit(client, url="https://example.vn/dec")
    doc = counters(client)
    assert views(doc, "this_month") == ("2026-12-01", 1, 1, 1)
    assert views(doc, "last_month") == ("2026-11-01", 2, 2, 2)
    assert views(doc, "this_week") == ("2026-11-30", 2, 2, 2)
    assert views(doc, "yesterday") == ("2026-11-30", 1, 1, 1)
    assert views(doc, "today") == ("2026-12-01", 1, 1, 1)
    assert views(doc, "total") == (None, 3, 3, 3)


def test_iso_week_53_of_2026_spans_the_new_year(client: FlaskClient, clock: FixedClock) -> None:
    days = ["2026-12-28", "2026-12-31", "2027-01-01", "2027-01-03"]
    for n, day in enumerate(days):
        at(clock, f"{day}T12:00:00")
        hit(client, url=f"https://example.vn/{n}")
    doc = counters(client)
    assert views(doc, "this_week") == ("2026-12-28", 4, 4, 4)  # 2026-W53, Monday to Sunday
    assert views(doc, "this_month") == ("2027-01-01", 2, 2, 2)
    assert views(doc, "last_month") == ("2026-12-01", 2, 2, 2)
    at(clock, "2027-01-04T00:00:00")  # 2027-W01 begins
    doc = counters(client)
    assert views(doc, "this_week") == ("2027-01-04", 0, 0, 0)
    assert views(doc, "last_week") == ("2026-12-28", 4, 4, 4)
    assert views(doc, "yesterday") == ("2027-01-03", 1, 1, 1)


def test_a_sunday_week(client: FlaskClient, clock: FixedClock, services: Services) -> None:
    register(services, "us", timezone="America/New_York", week_start="sunday")
    at(clock, "2026-11-28T23:59:59", "America/New_York")  # Saturday
    hit(client, "us", url="https://example.com/sat")
    at(clock, "2026-11-29T00:00:00", "America/New_York")  # Sunday starts the week
    hit(client, "us", url="https://example.com/sun")
    doc = counters(client, "us")
    assert views(doc, "this_week")[:2] == ("2026-11-29", 1)
    assert views(doc, "last_week")[:2] == ("2026-11-22", 1)
    at(clock, "2026-11-30T09:00:00", "America/New_York")  # Monday: still the same week
    hit(client, "us", url="https://example.com/mon")
    assert views(counters(client, "us"), "this_week")[:2] == ("2026-11-29", 2)
    # The Monday site sees the same instants in other weeks.
    assert views(counters(client), "this_week")[0] == "2026-11-30"


@pytest.mark.parametrize(
    ("instants", "read_at", "today", "yesterday", "offset"),
    [
        pytest.param(
            # 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC); a 23-hour day.
            ["2026-03-28T22:59:59", "2026-03-28T23:00:00", "2026-03-29T00:59:59",
             "2026-03-29T01:00:00", "2026-03-29T21:59:59"],
            "2026-03-29T21:59:59",
            ("2026-03-29", 4), ("2026-03-28", 1), "+02:00",
            id="spring-forward",
        ),
        pytest.param(
            # 2026-10-25: clocks fall back from 03:00 CEST to 02:00 CET (01:00 UTC); 25 hours,
            # and 02:30 happens twice.
            ["2026-10-24T21:59:59", "2026-10-24T22:00:00", "2026-10-25T00:30:00",
             "2026-10-25T01:30:00", "2026-10-25T22:59:59"],
            "2026-10-25T22:59:59",
            ("2026-10-25", 4), ("2026-10-24", 1), "+01:00",
            id="fall-back",
        ),
    ],
)  # fmt: skip
def test_a_dst_zone(
    client: FlaskClient,
    clock: FixedClock,
    services: Services,
    instants: list[str],
    read_at: str,
    today: tuple[str, int],
    yesterday: tuple[str, int],
    offset: str,
) -> None:
    register(services, "berlin", timezone=BERLIN)
    for n, instant in enumerate(instants):
        at_utc(clock, instant)
        hit(client, "berlin", url=f"https://example.de/{n}")
    at_utc(clock, read_at)
    doc = counters(client, "berlin")
    assert doc["as_of"].endswith(offset)
    assert views(doc, "today")[:2] == today
    assert views(doc, "yesterday")[:2] == yesterday
    # One second later the next local day has begun, whatever the length of this one.
    clock.advance(1)
    doc = counters(client, "berlin")
    assert views(doc, "today")[1] == 0
    assert views(doc, "yesterday")[:2] == today


def test_ambiguous_wall_clock_hour_counts_once_per_instant(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    register(services, "berlin", timezone=BERLIN)
    tz = ZoneInfo(BERLIN)
    for fold in (0, 1):  # 02:30 CEST, then 02:30 CET an hour later
        clock.set(datetime(2026, 10, 25, 2, 30, tzinfo=tz, fold=fold))
        hit(client, "berlin", url="https://example.de/")
    assert views(counters(client, "berlin"), "today")[:2] == ("2026-10-25", 2)


def test_pageviews_visits_and_visitors(client: FlaskClient, clock: FixedClock) -> None:
    for page in ("a", "b", "c"):  # one person reads three pages
        hit(client, url=f"https://example.vn/{page}")
        clock.advance(60)
    assert views(counters(client), "today")[1:] == (3, 1, 1)
    clock.advance(1741)  # 30 min 1 s after the last view: the session has timed out
    hit(client, url="https://example.vn/d")
    assert views(counters(client), "today")[1:] == (4, 2, 1)
    hit(client, url="https://example.vn/a", ip="198.51.100.20")  # another person
    hit(
        client, url="https://example.vn/a", ua="Mozilla/5.0 (iPhone) Safari/604.1"
    )  # same IP, other device
    assert views(counters(client), "today")[1:] == (6, 4, 3)
    assert views(counters(client), "total")[1:] == (6, 4, 3)


def test_session_timeout_is_per_site(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    register(services, "short", session_timeout_seconds=60)
    hit(client, "short", url="https://example.vn/a")
    clock.advance(61)
    hit(client, "short", url="https://example.vn/b")
    assert views(counters(client, "short"), "today")[1:] == (2, 2, 1)


def test_online_expires_after_the_online_window(client: FlaskClient, clock: FixedClock) -> None:
    hit(client, ip="198.51.100.1")
    clock.advance(100)
    hit(client, ip="198.51.100.2")
    assert counters(client)["online"] == 2
    clock.advance(200)  # the first visitor was seen exactly 300 s ago: still online
    assert counters(client)["online"] == 2
    clock.advance(0.001)
    assert counters(client)["online"] == 1
    clock.advance(100)
    assert counters(client)["online"] == 0


def test_heartbeats_keep_a_reader_online_and_count_nothing_else(
    client: FlaskClient, clock: FixedClock
) -> None:
    hit(client, url="https://example.vn/long-read")
    for _ in range(8):  # 40 minutes on one article, a heartbeat every 5 minutes
        clock.advance(299)
        assert hit(client, url="https://example.vn/long-read", kind="heartbeat") == 204
        assert counters(client)["online"] == 1
    assert views(counters(client), "today")[1:] == (1, 1, 1)
    # Still active: the next page continues the same visit.
    hit(client, url="https://example.vn/next")
    assert views(counters(client), "today")[1:] == (2, 1, 1)
    clock.advance(301)
    assert counters(client)["online"] == 0


def test_a_heartbeat_from_a_new_reader_makes_them_online_only(client: FlaskClient) -> None:
    assert hit(client, kind="heartbeat") == 204
    doc = counters(client)
    assert doc["online"] == 1
    assert views(doc, "total")[1:] == (0, 0, 0)


def test_online_window_is_per_site(
    client: FlaskClient, clock: FixedClock, services: Services
) -> None:
    register(services, "quick", online_window_seconds=60)
    hit(client, "quick")
    clock.advance(61)
    assert counters(client, "quick")["online"] == 0


def test_offsets_are_added_to_total_only(client: FlaskClient, services: Services) -> None:
    register(services, "old", offsets={"pageviews": 1_532_900, "visits": 345_678, "visitors": 9000})
    hit(client, "old")
    doc = counters(client, "old")
    assert views(doc, "total")[1:] == (1_532_901, 345_679, 9001)
    assert views(doc, "today")[1:] == (1, 1, 1)


def test_sites_are_counted_apart(client: FlaskClient, services: Services) -> None:
    register(services, "other")
    hit(client, "other")
    hit(client, "other", url="https://example.vn/2")
    assert views(counters(client), "total")[1] == 0
    assert views(counters(client, "other"), "total")[1] == 2
