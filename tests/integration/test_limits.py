"""The limits of one network (an IPv4 address, an IPv6 /64) on a site, under load from several
threads: a scripted client adds at most 60 visitors, 60 visits and 600 pageviews in any 10
minutes and keeps at most 60 online; 30 readers behind one address, and 60 on 60 addresses,
all count; a hit held back writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from flask import Flask
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from tests.helpers import counters, from_threads, hit

ATTACKER = "203.0.113.66"
WINDOW_S = 600


def outcomes(app: Flask) -> dict[str, float]:
    registry = app.extensions["analytics"].metrics.registry
    return {
        outcome: registry.get_sample_value("analytics_hits_total", {"outcome": outcome}) or 0.0
        for outcome in ("counted", "heartbeat", "rate_limited")
    }


def most_in_any_window(times: list[float], window: float = WINDOW_S) -> int:
    """The most of ``times`` (seconds) that any span of ``window`` seconds holds."""
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_scripted_address_adds_a_few_dozen_visitors_however_it_sends(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """A new browser user agent and a new page on every hit, from 4 threads, for 40 minutes:
    each counted hit is a new visitor and a new visit; never more than 60 of them in any 10
    minutes, across minute boundaries too."""
    counted_at: list[float] = []
    lock = threading.Lock()
    for step in range(240):  # 10 s a step
        before = outcomes(app)["counted"]

        def send(t: int, n: int, step: int = step) -> int:
            ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{step}.{t}.{n}"
            return hit(client, url=f"https://example.vn/{step}/{t}/{n}", ua=ua, ip=ATTACKER)

        assert from_threads(4, 5, send) == [204] * 20
        with lock:
            counted_at += [step * 10.0] * int(outcomes(app)["counted"] - before)
        clock.advance(10)
    assert most_in_any_window(counted_at) <= 60
    assert 4 * 60 <= len(counted_at) <= 5 * 60  # about 60 per window, over 4 windows
    total = counters(client)["windows"]["today"]
    assert total["visits"] == total["pageviews"] == len(counted_at)
    assert outcomes(app)["rate_limited"] == 240 * 20 - len(counted_at)


def test_a_scripted_address_adds_at_most_600_pageviews_in_any_10_minutes(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    counted_at: list[float] = []
    for step in range(60):  # 20 minutes, 20 s a step
        before = outcomes(app)["counted"]

        def send(t: int, n: int, step: int = step) -> int:
            # Five browsers, each reading new pages as fast as it can.
            ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{t}"
            return hit(client, url=f"https://example.vn/{step}/{t}/{n}", ua=ua, ip=ATTACKER)

        assert from_threads(5, 10, send) == [204] * 50
        counted_at += [step * 20.0] * int(outcomes(app)["counted"] - before)
        clock.advance(20)
    assert most_in_any_window(counted_at) <= 600
    assert len(counted_at) >= 1200  # and it does get them: two windows' worth


def test_heartbeats_from_one_address_keep_at_most_60_online(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    for step in range(10):  # 6,000 browsers in 5 minutes

        def send(t: int, n: int, step: int = step) -> int:
            ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{step}.{t}.{n}"
            return hit(client, kind="heartbeat", ua=ua, ip=ATTACKER)

        assert from_threads(6, 100, send) == [204] * 600
        clock.advance(30)
    assert counters(client)["online"] == 60
    assert outcomes(app)["heartbeat"] == 60
    assert outcomes(app)["rate_limited"] == 6000 - 60


def test_thirty_readers_behind_one_address_all_count(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """A school or an office behind one NAT address: 30 readers within a minute, two pages
    each, and their heartbeats."""

    def read(t: int, n: int) -> int:
        ua = f"Mozilla/5.0 (Windows NT 10.0) Chrome/124.0.{t}"
        kind = "heartbeat" if n == 2 else None
        return hit(client, url=f"https://example.vn/bai-{t}-{n}", ua=ua, ip=ATTACKER, kind=kind)

    assert from_threads(30, 3, read) == [204] * 90
    today = counters(client)["windows"]["today"]
    assert (today["pageviews"], today["visits"]) == (60, 30)
    assert counters(client)["online"] == 30
    assert outcomes(app)["rate_limited"] == 0


def test_sixty_readers_on_sixty_addresses_all_count(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    def read(t: int, n: int) -> int:
        ip = f"198.51.100.{t}" if t < 30 else f"2001:db8:{t}::1"
        return hit(client, url=f"https://example.vn/bai-{n}", ip=ip)

    assert from_threads(60, 2, read) == [204] * 120
    today = counters(client)["windows"]["today"]
    assert (today["pageviews"], today["visits"]) == (120, 60)
    assert outcomes(app)["rate_limited"] == 0


def everything(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key of the database and its serialized value."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def test_a_hit_held_back_leaves_no_key_and_no_byte_behind(
    app: Flask, client: FlaskClient, clock: FixedClock, redis_client: redis.Redis
) -> None:
    def newcomer(t: int, n: int) -> int:
        ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{t}.{n}"
        return hit(client, url=f"https://example.vn/{t}/{n}", ua=ua, ip=ATTACKER)

    assert from_threads(4, 20, newcomer) == [204] * 80  # 60 counted, then held back
    assert outcomes(app)["rate_limited"] == 20
    before, memory = everything(redis_client), redis_client.info("memory")["used_memory"]

    def flood(t: int, n: int) -> int:
        ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/125.0.{t}.{n}"
        return hit(client, url=f"https://example.vn/flood/{t}/{n}", ua=ua, ip=ATTACKER)

    assert from_threads(4, 500, flood) == [204] * 2000
    assert outcomes(app)["rate_limited"] == 2020
    after = everything(redis_client)
    # The readiness probe and the salts are not the flood's; nothing else may change.
    assert after == before
    assert redis_client.info("memory")["used_memory"] - memory < 64 * 1024


def test_a_networks_limits_hold_only_the_minutes_of_the_window(
    client: FlaskClient, clock: FixedClock, redis_client: redis.Redis
) -> None:
    """A reader who comes back every 11 minutes for hours: its network's hash never holds a
    minute the window no longer reaches."""
    for n in range(20):
        assert hit(client, url=f"https://example.vn/{n}", ip=ATTACKER) == 204
        clock.advance(11 * 60)
    # One hash a day: the network's keyed hash changes with the day's salt.
    for limits in redis_client.scan_iter(match="va:{demo}:lim:*"):
        assert redis_client.hlen(limits) <= 3  # the kinds of its last minute only
    assert (
        counters(client)["windows"]["today"]["pageviews"]
        + counters(client)["windows"]["yesterday"]["pageviews"]
        == 20
    )


def test_no_ten_minutes_hold_more_than_the_limit_at_the_window_edge(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """60 new visitors at :50 of a minute, then as many as the network may at :00 of the
    minute ten later (9 min 10 s on): none of them counts."""
    clock.set(clock().replace(second=50, microsecond=0))

    def newcomers(tag: str) -> Callable[[int, int], int]:
        def send(t: int, n: int) -> int:
            ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{tag}.{t}.{n}"
            return hit(client, url=f"https://example.vn/{tag}/{t}/{n}", ua=ua, ip=ATTACKER)

        return send

    assert from_threads(4, 15, newcomers("a")) == [204] * 60
    assert outcomes(app)["counted"] == 60
    clock.advance(9 * 60 + 10)
    assert from_threads(4, 15, newcomers("b")) == [204] * 60
    assert outcomes(app)["counted"] == 60
    clock.advance(60)  # ten minutes and more after the first ones: room again
    assert from_threads(4, 15, newcomers("c")) == [204] * 60
    assert outcomes(app)["counted"] == 120


def test_heartbeats_do_not_keep_more_than_60_online_however_long(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """Browsers kept alive by heartbeats while new ones come every window: the network still
    has at most 60 online."""
    alive: list[str] = []
    for step in range(12):  # 40 minutes, 200 s a step
        uas = [f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{step}.{n}" for n in range(60)]
        for ua in alive + uas:
            hit(client, kind="heartbeat", ua=ua, ip=ATTACKER)
        alive += uas
        assert counters(client)["online"] <= 60
        clock.advance(200)


def test_the_limits_do_not_start_afresh_at_midnight(
    app: Flask, client: FlaskClient, clock: FixedClock
) -> None:
    """60 new visitors just before the site's midnight, 60 more just after: the second 60 do
    not count, though the network's keyed hash changed with the day's salt."""
    # 23:59:40 in Asia/Ho_Chi_Minh (UTC+7), the demo site's timezone.
    clock.set(clock().replace(hour=16, minute=59, second=40, microsecond=0))

    def newcomers(tag: str) -> Callable[[int, int], int]:
        def send(t: int, n: int) -> int:
            ua = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.{tag}.{t}.{n}"
            return hit(client, url=f"https://example.vn/{tag}/{t}/{n}", ua=ua, ip=ATTACKER)

        return send

    assert from_threads(4, 15, newcomers("before")) == [204] * 60
    clock.advance(30)  # 00:00:10 the next day
    assert from_threads(4, 15, newcomers("after")) == [204] * 60
    assert outcomes(app)["counted"] == 60
