from datetime import UTC, date, datetime

from analytics.clock import FixedClock
from analytics.errors import StoreUnavailable
from analytics.identity import Salts, network_id, network_of, page_id, salt_expiry, visitor_id

SALT = b"s" * 32


def test_visitor_ids_are_keyed_and_distinct() -> None:
    a = visitor_id(SALT, "demo", "203.0.113.7", "Firefox")
    assert a == visitor_id(SALT, "demo", "203.0.113.7", "Firefox")
    assert len(a) == 32 and int(a, 16) >= 0
    others = {
        visitor_id(b"t" * 32, "demo", "203.0.113.7", "Firefox"),  # next day's salt
        visitor_id(SALT, "other", "203.0.113.7", "Firefox"),
        visitor_id(SALT, "demo", "203.0.113.8", "Firefox"),
        visitor_id(SALT, "demo", "203.0.113.7", "Chrome"),
        # The separator keeps fields apart: no ambiguity from concatenation.
        visitor_id(SALT, "demo", "203.0.113.7F", "irefox"),
    }
    assert a not in others and len(others) == 5


def test_networks_are_addresses_or_ipv6_slash_64s() -> None:
    assert network_of("203.0.113.7") == "203.0.113.7"
    assert network_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert network_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert network_of("not an address") == "not an address"
    one = network_id(SALT, "demo", "2001:db8:1:2::1")
    assert one == network_id(SALT, "demo", "2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert one != network_id(SALT, "demo", "2001:db8:1:3::1")
    assert one != visitor_id(SALT, "demo", "2001:db8:1:2::1", "")


def test_page_ids_hash_the_url() -> None:
    assert page_id("https://example.vn/a") != page_id("https://example.vn/b")
    assert len(page_id("https://example.vn/tin-tức")) == 24


def test_a_salt_lives_until_its_day_has_ended_everywhere() -> None:
    # 2026-11-26 ends last at UTC-12, at 2026-11-27T12:00Z; the salt goes at midnight after.
    assert salt_expiry(date(2026, 11, 26)) == datetime(2026, 11, 28, tzinfo=UTC)


def test_salts_are_fetched_once_per_day_and_shared() -> None:
    calls: list[tuple[date, int]] = []
    shared: dict[date, bytes] = {}

    def fetch(day: date, candidate: bytes, lifetime: int) -> bytes:
        calls.append((day, lifetime))
        return shared.setdefault(day, candidate)

    clock = FixedClock(datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
    one, two = Salts(fetch, clock), Salts(fetch, clock)
    day = date(2026, 11, 26)
    assert one.for_day(day) == one.for_day(day) == two.for_day(day)  # two processes agree
    # Once per process, and the next day's with it: fetched ahead, it is there at midnight.
    assert [c[0] for c in calls] == [day, date(2026, 11, 27)] * 2
    assert calls[0][1] == 43 * 3600  # until 2026-11-28T00:00Z
    assert one.for_day(date(2026, 11, 27)) != one.for_day(day)
    # Tomorrow's came from the cache, and fetched the day after's ahead.
    assert [c[0] for c in calls[4:]] == [date(2026, 11, 28)]
    assert len(one.for_day(day)) == 32


def test_a_salt_stands_in_while_the_store_is_away_and_is_replaced_once_it_is_back() -> None:
    away = True
    shared: dict[date, bytes] = {}
    asked: list[date] = []

    def fetch(day: date, candidate: bytes, lifetime: int) -> bytes:
        asked.append(day)
        if away:
            raise StoreUnavailable()
        return shared.setdefault(day, candidate)

    salts = Salts(fetch, FixedClock(datetime(2026, 11, 26, 5, 0, tzinfo=UTC)))
    day = date(2026, 11, 26)
    stand_in = salts.for_day(day)
    # Asked for the day and the next, then not again at once.
    assert salts.for_day(day) == stand_in and asked == [day, date(2026, 11, 27)]
    salts.RETRY_SECONDS = 0.0
    away = False
    assert salts.for_day(day) == shared[day] != stand_in
