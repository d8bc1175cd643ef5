"""The admin API's gate under attack: the right token is never refused, and failures are
counted atomically per network, over a sliding minute, under a keyed hash of the network."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.auth import MAX_FAILURES_PER_MINUTE
from analytics.clock import FixedClock
from analytics.settings import Settings
from tests.helpers import AUTH, TOKEN, audit

SITES = "/api/v1/admin/sites"
WRONG = {"Authorization": "Bearer not-the-token"}
ATTACKER = "203.0.113.45"


def get(app: Flask, headers: dict[str, str], address: str = ATTACKER) -> int:
    response = app.test_client().get(SITES, headers=headers, environ_base={"REMOTE_ADDR": address})
    return response.status_code


def at_once(threads: int, work: Callable[[int], None]) -> None:
    """Runs ``work(t)`` in ``threads`` threads released together."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(t: int) -> None:
        start.wait(10)
        try:
            work(t)
        except BaseException as err:  # reported by the test thread below
            failures.append(err)

    started = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    assert not any(thread.is_alive() for thread in started)
    assert not failures, failures


def test_a_burst_of_wrong_tokens_sees_exactly_the_limit_checked(
    admin_app: Flask, redis_client: redis.Redis
) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt(t: int) -> None:
        status = get(admin_app, WRONG)
        with lock:
            statuses.append(status)

    at_once(40, attempt)
    assert Counter(statuses) == {401: MAX_FAILURES_PER_MINUTE, 429: 40 - MAX_FAILURES_PER_MINUTE}
    assert redis_client.xlen("va:audit:auth") == MAX_FAILURES_PER_MINUTE  # the checked ones


def test_the_right_token_passes_during_a_flood_of_wrong_ones_from_its_network(
    admin_app: Flask,
) -> None:
    wrong: list[int] = []
    right: list[int] = []
    lock = threading.Lock()

    def client(t: int) -> None:
        for _ in range(30):
            # Every third thread is the admin, on the same network as the flood (its NAT).
            is_admin = t % 3 == 0
            status = get(admin_app, AUTH if is_admin else WRONG, "198.51.100.7")
            with lock:
                (right if is_admin else wrong).append(status)

    at_once(6, client)
    assert right == [200] * 60
    assert Counter(wrong) == {401: MAX_FAILURES_PER_MINUTE, 429: 120 - MAX_FAILURES_PER_MINUTE}
    # Before and after the flood, too.
    assert get(admin_app, WRONG, "198.51.100.7") == 429
    assert get(admin_app, AUTH, "198.51.100.7") == 200


def test_an_ipv6_network_is_its_64(admin_app: Flask) -> None:
    for n in range(MAX_FAILURES_PER_MINUTE):
        assert get(admin_app, WRONG, f"2001:db8:1:2::{n + 1:x}") == 401
    assert get(admin_app, WRONG, "2001:db8:1:2:ffff:eeee:dddd:cccc") == 429  # same /64
    assert get(admin_app, WRONG, "2001:db8:1:3::1") == 401  # the next /64
    assert get(admin_app, AUTH, "2001:db8:1:2::1") == 200


def test_the_window_slides_rather_than_restarting_each_minute(
    admin_app: Flask, clock: FixedClock
) -> None:
    clock.advance(50)  # 15:01:55: ten seconds of the minute left
    for _ in range(MAX_FAILURES_PER_MINUTE):
        assert get(admin_app, WRONG) == 401
    assert get(admin_app, WRONG) == 429  # 11 this minute
    clock.advance(15)  # 15:02:10: 50 s of the last minute still weigh, 11 * 50/60 -> 9
    assert get(admin_app, WRONG) == 401  # 1 + 9
    assert get(admin_app, WRONG) == 429  # a calendar minute would have allowed 10 here
    clock.advance(60)  # 15:03:10: 2 * 50/60 -> 1 of the last minute
    statuses = [get(admin_app, WRONG) for _ in range(MAX_FAILURES_PER_MINUTE)]
    assert statuses == [401] * (MAX_FAILURES_PER_MINUTE - 1) + [429]


def test_no_address_in_the_throttle_keys_or_the_audit(
    admin_app: Flask, redis_client: redis.Redis
) -> None:
    for address in (ATTACKER, ATTACKER, "2001:db8:1:2::1", "2001:db8:1:2::2", "192.0.2.1"):
        assert get(admin_app, WRONG, address) == 401
    keys = [key.decode() for key in redis_client.keys("va:authfail:*")]
    assert len(keys) == 3  # one per network, this minute
    for key in keys:
        assert "203.0.113" not in key and "2001" not in key and "192.0.2" not in key
    entries = audit(admin_app.test_client())
    tags = [e["ip"] for e in entries if e["action"] == "auth_failed"]
    assert len(tags) == 5 and all(tag.startswith("net:") and len(tag) == 16 for tag in tags)
    newest_first = tags[::-1]
    # The same network has one tag, another network another: sources told apart, not named.
    assert newest_first[0] == newest_first[1] and newest_first[2] == newest_first[3]
    assert len(set(tags)) == 3


def test_a_forwarded_address_cannot_pass_for_the_command_line_in_the_audit(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    app = create_app(
        settings.replace(admin_token=TOKEN, trusted_proxies=1),
        clock=clock,
        registry=CollectorRegistry(),
    )
    client = app.test_client()
    response = client.post(
        "/api/v1/admin/sites",
        json={"id": "spoofed"},
        headers={**AUTH, "X-Forwarded-For": "cli:root@server"},
    )
    assert response.status_code == 201
    (entry,) = [e for e in audit(client) if e["site"] == "spoofed"]
    assert entry["ip"].startswith("net:")
