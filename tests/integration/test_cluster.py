"""The same code on a real Redis Cluster of three masters (docs/operations.md, scaling).

A module-scoped fixture starts three redis-server processes in cluster mode
(bench/cluster.py, which the benchmark uses too): joined with CLUSTER MEET, the
16384 slots split between them with CLUSTER ADDSLOTS, ready once every node
reports ``cluster_state:ok``. The app then talks to it through ``redis+cluster://``,
exactly as configured in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster
from redis.crc import key_slot

from analytics import create_app
from analytics.clock import FixedClock
from analytics.counting import Outcome
from analytics.errors import AnalyticsError
from analytics.periods import WINDOWS
from analytics.settings import Settings
from analytics.store import HitCall, KeySpace
from bench.cluster import MASTERS, Cluster, local_cluster
from tests.helpers import BROWSER_UA, EXAMPLE_INSTANT, count_from_threads, counters, hit

pytestmark = pytest.mark.slow

KEYS = KeySpace()
HASH_TAG = re.compile(rb"\{([^}]+)\}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Three cluster-enabled masters owning a third of the slots each; stopped afterwards."""
    with local_cluster(MASTERS) as started:
        yield started


@pytest.fixture
def cluster_app(cluster: Cluster, tmp_path: Path) -> Iterator[Flask]:
    """A fresh app on an emptied cluster, with the fixed clock of the other tests."""
    for port in cluster.ports:
        with cluster.node(port) as node:
            node.flushall()
    settings = Settings(
        redis_url=cluster.url, data_dir=tmp_path, read_cache_seconds=0, site_cache_seconds=0
    )
    app = create_app(settings, clock=FixedClock(EXAMPLE_INSTANT), registry=CollectorRegistry())
    assert isinstance(app.extensions["analytics"].store.conn.client, RedisCluster)
    yield app
    app.extensions["analytics"].store.close()


# -- sites spread over the three masters --------------------------------------

CANDIDATES = ("shop", "blog", "news", "docs", "forum", "wiki", "store", "press", "help", "jobs")
TIMEZONES = ("Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York")


def _site_slot(site_id: str) -> int:
    return key_slot(KEYS.site_config(site_id).encode())


def _sites_by_master(cluster: Cluster) -> dict[int, str]:
    """One site id per master (the first candidate whose slot that master owns)."""
    found: dict[int, str] = {}
    for site_id in CANDIDATES:
        found.setdefault(cluster.port_of_slot(_site_slot(site_id)), site_id)
    assert len(found) == MASTERS, found
    return found


def _clock(app: Flask) -> FixedClock:
    clock = app.extensions["analytics"].clock
    assert isinstance(clock, FixedClock)
    return clock


def _at(clock: FixedClock, text: str) -> None:
    clock.set(datetime.fromisoformat(text).replace(tzinfo=UTC))


def _expected(extra: int) -> dict[str, tuple[int, int, int]]:
    """(pageviews, visits, visitors) per window of the scenario below, seen at EXAMPLE_INSTANT."""
    return {
        "today": (3 + extra, 2 + extra, 1 + extra),
        "yesterday": (2, 1, 1),
        "this_week": (5 + extra, 3 + extra, 2 + extra),
        "last_week": (2, 2, 2),
        "this_month": (7 + extra, 5 + extra, 4 + extra),
        "last_month": (1, 1, 1),
        "total": (8 + extra, 6 + extra, 5 + extra),
    }


def _play(client: FlaskClient, sites: list[str]) -> None:
    """Hits on every site, interleaved, at instants whose local date is the same in all zones.

    Site number ``n`` gets ``n + 1`` extra visitors today, so no two sites have equal counts.
    The salt rotates daily, so one IP on two days is two visitors.
    """
    clock = _clock(client.application)

    def each(url: str, ip: str) -> None:
        for site in sites:
            assert hit(client, site, url, ua=BROWSER_UA, ip=ip) == 204

    _at(clock, "2026-10-15T12:00:00")  # last month
    each("https://example.vn/october", "198.51.100.1")
    _at(clock, "2026-11-18T12:00:00")  # last week, this month
    each("https://example.vn/", "198.51.100.1")
    each("https://example.vn/", "198.51.100.2")
    _at(clock, "2026-11-25T12:00:00")  # yesterday: one visit of two pages
    each("https://example.vn/", "198.51.100.1")
    clock.advance(minutes=5)
    each("https://example.vn/about", "198.51.100.1")
    _at(clock, "2026-11-26T14:00:00")  # today: one visitor, two visits, three pages
    each("https://example.vn/", "198.51.100.3")
    clock.advance(minutes=10)
    each("https://example.vn/a", "198.51.100.3")
    clock.advance(minutes=48)  # longer than the 30 min session timeout: a new visit
    each("https://example.vn/b", "198.51.100.3")
    _at(clock, "2026-11-26T15:00:00")
    for n, site in enumerate(sites):
        for i in range(n + 1):
            assert hit(client, site, "https://example.vn/", ip=f"192.0.2.{10 * n + i}") == 204
    clock.set(EXAMPLE_INSTANT)


def _register(app: Flask, cluster: Cluster) -> list[str]:
    sites = list(_sites_by_master(cluster).values())
    for site_id, timezone in zip(sites, TIMEZONES, strict=True):
        app.extensions["analytics"].sites.upsert({"id": site_id, "timezone": timezone})
    return sites


def test_sites_on_different_masters_count_exactly(cluster: Cluster, cluster_app: Flask) -> None:
    sites = _register(cluster_app, cluster)
    # The cluster itself agrees on where each site lives, and it is three different masters.
    store_client = cluster_app.extensions["analytics"].store.conn.client
    owners = {}
    for site_id in sites:
        slot = _site_slot(site_id)
        assert store_client.keyslot(KEYS.online(site_id)) == slot
        with cluster.node(cluster.ports[0]) as node:
            assert node.execute_command("CLUSTER", "KEYSLOT", KEYS.site_config(site_id)) == slot
        owners[site_id] = store_client.get_node_from_key(KEYS.site_config(site_id)).port
        assert owners[site_id] == cluster.port_of_slot(slot)
    assert len(set(owners.values())) == MASTERS, owners

    client = cluster_app.test_client()
    assert client.get("/readyz").status_code == 200  # PING reaches every node
    _play(client, sites)

    for n, site_id in enumerate(sites):
        doc = counters(client, site_id)
        assert doc["site"] == site_id
        assert doc["timezone"] == TIMEZONES[n]
        assert doc["online"] == 1 + (n + 1)  # today's visitor (14:58) and the extras (15:00)
        got = {
            name: (w["pageviews"], w["visits"], w["visitors"]) for name, w in doc["windows"].items()
        }
        assert list(got) == list(WINDOWS)
        assert got == _expected(n + 1), site_id
    assert counters(client, "demo")["windows"]["total"]["pageviews"] == 0


def test_every_key_of_a_site_lives_in_one_slot(cluster: Cluster, cluster_app: Flask) -> None:
    sites = _register(cluster_app, cluster)
    _play(cluster_app.test_client(), sites)

    slots: dict[str, set[int]] = {}
    homes: dict[str, set[int]] = {}
    kinds: dict[str, set[str]] = {}
    untagged: set[bytes] = set()
    for port in cluster.ports:
        with cluster.node(port) as node:
            for key in node.scan_iter(match=f"{KEYS.prefix}:*", count=1000):
                tag = HASH_TAG.search(key)
                if tag is None:
                    untagged.add(key)
                    continue
                site_id = tag.group(1).decode()
                slots.setdefault(site_id, set()).add(key_slot(key))
                homes.setdefault(site_id, set()).add(port)
                kinds.setdefault(site_id, set()).add(key.decode().split(":")[2])

    assert set(slots) == {*sites, "demo"}
    for site_id, found in slots.items():
        assert found == {_site_slot(site_id)}, site_id
        assert homes[site_id] == {cluster.port_of_slot(_site_slot(site_id))}, site_id
    for site_id in sites:
        # config, counts, visitors, pages, online set, reload guards, the networks' limits,
        # and the mark of the writer that counted
        assert kinds[site_id] == {
            "site", "c", "u", "pg", "online", "dup", "lim", "lon", "w"
        }, site_id  # fmt: skip
    assert len({port for site_id in sites for port in homes[site_id]}) == MASTERS
    # The only keys outside a site's slot: the site index and the daily salts, each
    # touched by single-key commands only.
    days = [date(2026, 10, 15), date(2026, 11, 18), date(2026, 11, 25), date(2026, 11, 26)]
    # Each day's, and the next day's, fetched with it.
    salts = {KEYS.salt((d + timedelta(days=n)).isoformat()).encode() for d in days for n in (0, 1)}
    assert untagged == {KEYS.sites_index().encode(), *salts}


def _outcomes(app: Flask) -> dict[str, float]:
    registry = app.extensions["analytics"].metrics.registry
    return {
        outcome: registry.get_sample_value("analytics_hits_total", {"outcome": outcome}) or 0.0
        for outcome in ("counted", "heartbeat", "duplicate", "rate_limited")
    }


def test_heartbeat_and_duplicate_outcomes(cluster: Cluster, cluster_app: Flask) -> None:
    sites = _register(cluster_app, cluster)
    client = cluster_app.test_client()
    clock = _clock(cluster_app)
    page = "https://example.vn/post"
    for site_id in sites:
        before = _outcomes(cluster_app)
        assert hit(client, site_id, page, ip="203.0.113.10") == 204
        assert hit(client, site_id, page, ip="203.0.113.10") == 204  # a reload: duplicate
        assert hit(client, site_id, page, kind="heartbeat", ip="203.0.113.10") == 204
        assert hit(client, site_id, page, kind="heartbeat", ip="203.0.113.11") == 204
        after = _outcomes(cluster_app)
        assert {k: after[k] - before[k] for k in after} == {
            "counted": 1, "heartbeat": 2, "duplicate": 1, "rate_limited": 0
        }  # fmt: skip
        doc = counters(client, site_id)
        assert doc["online"] == 2  # a heartbeat keeps (or makes) a visitor online
        assert doc["windows"]["today"] == {
            "start": "2026-11-26", "pageviews": 1, "visits": 1, "visitors": 1
        }  # fmt: skip

    clock.advance(seconds=11)  # past the 10 s reload window: the same page counts again
    for site_id in sites:
        assert hit(client, site_id, page, ip="203.0.113.10") == 204
        today = counters(client, site_id)["windows"]["today"]
        assert (today["pageviews"], today["visits"], today["visitors"]) == (2, 1, 1)
    assert _outcomes(cluster_app) == {
        "counted": 2 * MASTERS, "heartbeat": 2 * MASTERS, "duplicate": MASTERS, "rate_limited": 0
    }  # fmt: skip


def test_hits_of_many_threads_to_sites_on_every_master_are_all_counted(
    cluster: Cluster, cluster_app: Flask
) -> None:
    """The hit writer's batches mix sites whose keys live on different masters."""
    sites = _register(cluster_app, cluster)
    services = cluster_app.extensions["analytics"]
    sizes: list[int] = []
    send = services.store.counts.send

    def recording(batch: Sequence[HitCall]) -> list[list[str] | AnalyticsError]:
        sizes.append(len({call.site_id for call in batch}))
        return send(batch)

    services.store.counts.send = recording  # type: ignore[method-assign]
    outcomes = count_from_threads(services, 12, 30, lambda t, n: sites[(t + n) % len(sites)])
    assert outcomes == [Outcome.COUNTED] * 360
    assert max(sizes) > 1  # some batch held the hits of several sites, on several masters
    totals = [services.reading.counters(site).windows["total"].pageviews for site in sites]
    assert totals == [120, 120, 120]
