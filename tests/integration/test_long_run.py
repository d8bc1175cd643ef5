"""400 simulated days of two sites: the history matches the traffic sent, memory stays flat."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis

from analytics.clock import FixedClock
from analytics.counting import Hit, Kind, Outcome
from analytics.services import Services
from analytics.store.counts import MARK_DAYS
from tests.helpers import BROWSER_UA

pytestmark = pytest.mark.slow

DAYS = 400
START = date(2026, 1, 1)  # through a DST year, ISO week 53 and a leap-free February
SITES = {
    "hcm": (ZoneInfo("Asia/Ho_Chi_Minh"), "monday", time(9)),
    "berlin": (ZoneInfo("Europe/Berlin"), "sunday", time(10)),
}


def traffic(site: str, day: int) -> list[int]:
    """Pages read by each visitor of ``site`` on simulation day ``day``: varies day by day."""
    visitors = 3 + (day * 7 + len(site)) % 9
    return [1 + (day + v) % 3 for v in range(visitors)]


def site_bytes(client: redis.Redis, site: str) -> int:
    """What a site keeps for good, but its all-time visitors estimate.

    The networks' limits and the reload guards expire within ten minutes of real time by
    themselves, a closed period's pages and referrers lists within 32 days, and the writer's
    mark within 30 days (asserted here); a simulation that runs 400 days in seconds never gives
    them that time, so they are left out.
    """
    total = 0
    marks = 0
    for key in client.scan_iter(match=f"va:{{{site}}}:*", count=1000):
        ttl = client.pttl(key)
        kind = key.split(b"}:", 1)[1].split(b":")[0]
        if ttl > 0 and kind == b"w":  # the mark of the one writer, refreshed as it counts
            assert ttl <= MARK_DAYS * 86_400_000, key
            marks += 1
            continue
        if ttl > 0 and kind in (b"pg", b"rf"):
            # A closed period's pages and referrers lists: gone once no window shows them.
            assert ttl <= 32 * 86_400_000, key
            continue
        if ttl > 0:
            assert ttl <= 660_000 and kind in (b"lim", b"lon", b"dup"), key
            continue
        if key.endswith(b":u:t:total"):  # a HyperLogLog: 12 KB at most, however many visitors
            assert int(client.memory_usage(key, samples=0) or 0) <= 12 * 1024 + 512
            continue
        total += int(client.memory_usage(key, samples=0) or 0)
    assert marks <= 1
    return total


def history_bytes(client: redis.Redis, site: str) -> int:
    return sum(
        int(client.memory_usage(key, samples=0) or 0)
        for key in client.scan_iter(match=f"va:{{{site}}}:h:*", count=1000)
    )


def test_four_hundred_days(
    services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    for site, (tz, week_start, _) in SITES.items():
        services.sites.upsert({"id": site, "timezone": tz.key, "week_start": week_start})
    sent: dict[tuple[str, date], tuple[int, int]] = {}
    memory: dict[int, dict[str, int]] = {}
    for day in range(DAYS):
        local_day = START + timedelta(days=day)
        for site, (tz, _, opening) in SITES.items():
            pages = traffic(site, day)
            for visitor, count in enumerate(pages):
                for page in range(count):
                    minute = datetime.combine(local_day, opening, tz) + timedelta(
                        minutes=visitor * 5 + page
                    )
                    clock.set(minute)
                    outcome = services.counting.count(
                        Hit(
                            site,
                            f"https://example.vn/{visitor}/{page}",
                            Kind.PAGEVIEW,
                            f"198.51.100.{visitor}",
                            BROWSER_UA,
                        )
                    )
                    assert outcome is Outcome.COUNTED
            sent[(site, local_day)] = (sum(pages), len(pages))
        # Scheduler ticks, twice a (UTC) day, as the 60-second interval would over the day.
        for hour in (12, 24):
            clock.set(
                datetime.combine(START + timedelta(days=day), time(0), ZoneInfo("UTC"))
                + timedelta(hours=hour, minutes=30)
            )
            services.housekeeper.run_all()
        if day + 1 in (30, 200, DAYS):
            memory[day + 1] = {site: site_bytes(redis_client, site) for site in SITES}

    for site in SITES:
        days = []
        first = START
        while first < START + timedelta(days=DAYS):
            last = min(first + timedelta(days=365), START + timedelta(days=DAYS - 1))
            days += services.history.days(site, first, last)
            first = last + timedelta(days=1)
        assert len(days) == DAYS
        for entry in days:
            pageviews, visitors = sent[(site, date.fromisoformat(entry["date"]))]
            assert entry["pageviews"] == pageviews, entry
            assert entry["visits"] == visitors, entry  # each reader makes one visit a day
            assert abs(entry["visitors"] - visitors) <= max(1, visitors * 0.02), entry
        closed = services.store.history.last_closed(site)
        # Closing began 62 days before the first day and has reached the last day.
        assert closed["d:since"] == (START - timedelta(days=62)).isoformat()
        assert closed["d"] == (START + timedelta(days=DAYS - 1)).isoformat()
    # Every day of every site (the two and the demo) closed exactly once: the 62 before the
    # first, and each one since.
    closes = services.metrics.registry.get_sample_value(
        "analytics_periods_closed_total", {"grain": "d"}
    )
    assert services.sites.ids() == sorted([*SITES, "demo"])
    assert closes == len(services.sites.ids()) * (DAYS + 62)

    per_day = {site: history_bytes(redis_client, site) / (DAYS - 1) for site in SITES}
    print(f"\nmemory per site, bytes: {memory}; history bytes per site per day: {per_day}")
    for site in SITES:
        # Flat: from day 200 to day 400 a site grows only by its frozen history.
        growth = (memory[DAYS][site] - memory[200][site]) / (DAYS - 200)
        assert growth <= 48, (site, growth)
        # And day 400 is within a small constant of day 30: the history of 370 more days and
        # the longer retention window (62 days of period keys against 30).
        assert memory[DAYS][site] - memory[30][site] <= 370 * 48 + 32 * 200, site
        assert per_day[site] <= 40
