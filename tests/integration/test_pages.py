"""Pages and referrers: each counted pageview counts for its page and its referrer's host, in
every window; the lists read back in order, and stay bounded and right whatever paths clients
send."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.counting import Hit, Kind, Outcome
from analytics.periods import TOTAL, Grain, Period
from analytics.services import Services
from analytics.settings import Settings
from tests.helpers import BROWSER_UA, from_threads, hit

WINDOWS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "total")


def view(
    client: FlaskClient,
    url: str,
    referrer: str | None = None,
    *,
    ip: str = "203.0.113.7",
    ua: str = BROWSER_UA,
) -> None:
    """One pageview of ``url`` from ``referrer``, answered 204."""
    assert hit(client, url=url, ua=ua, ip=ip, referrer=referrer) == 204


def readers(n: int) -> list[str]:
    """``n`` readers, each on an address of its own."""
    return [f"198.51.{i // 250}.{i % 250 + 1}" for i in range(n)]


def get(client: FlaskClient, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    return response.get_json()


def test_each_counted_pageview_counts_for_its_page_most_viewed_first_ties_by_path(
    client: FlaskClient,
) -> None:
    views = {"/tin-tuc/1": 3, "/": 2, "/b": 2, "/a": 2, "/gioi-thieu": 1}
    for (path, n), ips in zip(views.items(), [readers(3)] * len(views), strict=True):
        for ip in ips[:n]:
            view(client, f"https://example.vn{path}?utm_source=x#top", ip=ip)
    doc = get(client, "/api/v1/sites/demo/pages")
    assert doc == {
        "site": "demo",
        "window": "today",
        "start": "2026-11-26",
        "pages": [
            {"path": "/tin-tuc/1", "pageviews": 3},
            {"path": "/", "pageviews": 2},
            {"path": "/a", "pageviews": 2},
            {"path": "/b", "pageviews": 2},
            {"path": "/gioi-thieu", "pageviews": 1},
        ],
    }
    # A limit that cuts a tie keeps the first paths of it.
    cut = get(client, "/api/v1/sites/demo/pages?window=total&limit=3")
    assert cut["start"] is None
    assert [p["path"] for p in cut["pages"]] == ["/tin-tuc/1", "/", "/a"]


def test_a_page_is_its_path_without_query_or_fragment_and_one_however_it_is_encoded(
    client: FlaskClient,
) -> None:
    ips = readers(5)
    view(client, "https://example.vn", ip=ips[0])
    view(client, "https://example.vn/?page=2", ip=ips[1])
    view(client, "https://example.vn/tin-t%E1%BB%A9c/1", ip=ips[2])
    view(client, "https://example.vn/tin-tức/1#comments", ip=ips[3])
    view(client, "https://example.vn/bad%FFbyte", ip=ips[4])
    pages = get(client, "/api/v1/sites/demo/pages")["pages"]
    assert pages == [
        {"path": "/", "pageviews": 2},
        {"path": "/tin-tức/1", "pageviews": 2},
        {"path": "/bad%FFbyte", "pageviews": 1},
    ]
    for asked in ("/tin-tức/1", "/tin-t%E1%BB%A9c/1", "https://example.vn/tin-tức/1?x=1"):
        doc = client.get("/api/v1/sites/demo/page", query_string={"path": asked}).get_json()
        assert doc["path"] == "/tin-tức/1"
        assert doc["windows"]["today"] == {"pageviews": 2}


def test_one_page_in_every_window_and_zeros_for_a_page_never_seen(
    client: FlaskClient, clock: FixedClock
) -> None:
    # Wednesday 2026-11-25 (last month's? no: this month), then a week on, then a month on.
    clock.set(clock() - timedelta(days=40))  # 2026-10-17, a Saturday
    view(client, "https://example.vn/tin-tuc/1", ip="198.51.100.1")
    clock.set(clock() + timedelta(days=33))  # 2026-11-19, the week before the last one
    view(client, "https://example.vn/tin-tuc/1", ip="198.51.100.2")
    clock.set(clock() + timedelta(days=6))  # 2026-11-25, yesterday of the last day
    for ip in readers(2):
        view(client, "https://example.vn/tin-tuc/1", ip=ip)
    clock.set(clock() + timedelta(days=1))  # 2026-11-26
    for ip in readers(3):
        view(client, "https://example.vn/tin-tuc/1", ip=ip)
    doc = get(client, "/api/v1/sites/demo/page?path=/tin-tuc/1")
    assert doc == {
        "site": "demo",
        "path": "/tin-tuc/1",
        "windows": {
            "today": {"pageviews": 3},
            "yesterday": {"pageviews": 2},
            "this_week": {"pageviews": 5},
            "last_week": {"pageviews": 1},
            "this_month": {"pageviews": 6},
            "last_month": {"pageviews": 1},
            "total": {"pageviews": 7},
        },
    }
    never = get(client, "/api/v1/sites/demo/page?path=/chua-co")
    assert never["windows"] == {name: {"pageviews": 0} for name in WINDOWS}
    # The lists of the other windows read the same periods.
    last_week = get(client, "/api/v1/sites/demo/pages?window=last_week")
    assert last_week["start"] == "2026-11-16"
    assert last_week["pages"] == [{"path": "/tin-tuc/1", "pageviews": 1}]


def test_only_counted_pageviews_count_for_their_page_and_referrer(
    client: FlaskClient, services: Services
) -> None:
    url = "https://example.vn/tin-tuc/1"
    view(client, url, "https://www.google.com/")
    view(client, url, "https://www.google.com/")  # a reload: a duplicate
    body = {"site": "demo", "url": url, "referrer": "https://google.com/", "type": "heartbeat"}
    assert client.post("/api/v1/hit", json=body, headers={"User-Agent": BROWSER_UA}).status_code
    assert hit(client, url=url, ua="curl/8.5.0") == 204  # a bot
    assert get(client, "/api/v1/sites/demo/page?path=/tin-tuc/1")["windows"]["total"] == {
        "pageviews": 1
    }
    referrers = get(client, "/api/v1/sites/demo/referrers?window=total")["referrers"]
    assert referrers == [{"host": "google.com", "pageviews": 1}]


def test_referrers_by_host_without_the_sites_own_hosts(client: FlaskClient) -> None:
    ips = iter(readers(20))
    sent = [
        "https://www.google.com/search?q=lao+cai",
        "https://google.com/",
        "https://GOOGLE.com./url",
        "https://facebook.com/share",
        "http://l.facebook.com/l.php?u=x",
        "android-app://com.google.android.gm/",
        "https://example.vn/tin-tuc/2",  # the page's own host
        "https://www.example.vn/",  # the same, with www.
        "",
        "not a url",
        "javascript:alert(1)",
        "https://exa mple.com/",
        "file:///etc/passwd",
    ]
    for referrer in sent:
        view(client, "https://example.vn/tin-tuc/1", referrer, ip=next(ips))
    view(client, "https://example.vn/tin-tuc/1", ip=next(ips))  # none at all
    doc = get(client, "/api/v1/sites/demo/referrers")
    assert doc == {
        "site": "demo",
        "window": "today",
        "start": "2026-11-26",
        "referrers": [
            {"host": "google.com", "pageviews": 3},
            {"host": "com.google.android.gm", "pageviews": 1},
            {"host": "facebook.com", "pageviews": 1},
            {"host": "l.facebook.com", "pageviews": 1},
        ],
    }


def test_a_sites_listed_origins_are_its_own_hosts(client: FlaskClient, services: Services) -> None:
    services.sites.upsert({"id": "demo", "origins": ["https://example.vn", "https://tintuc.vn"]})
    headers = {"Origin": "https://example.vn", "User-Agent": BROWSER_UA}
    for n, referrer in enumerate(
        ["https://tintuc.vn/a", "https://www.tintuc.vn/", "https://x.vn/"]
    ):
        response = client.post(
            "/api/v1/hit",
            json={"site": "demo", "url": "https://example.vn/", "referrer": referrer},
            headers=headers,
            environ_base={"REMOTE_ADDR": f"198.51.100.{n + 1}"},
        )
        assert response.status_code == 204
    assert get(client, "/api/v1/sites/demo/referrers")["referrers"] == [
        {"host": "x.vn", "pageviews": 1}
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("window=tomorrow", "window"),
        ("window=", "window"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: a digit to str.isdigit, no number
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic three
        ("limit=0010", "limit"),
    ],
)
@pytest.mark.parametrize("listing", ["pages", "referrers"])
def test_a_bad_window_or_limit_is_a_400_naming_it(
    client: FlaskClient, listing: str, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/sites/demo/{listing}?{query}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert error["field"] == field
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sites/nope/pages",
        "/api/v1/sites/nope/pages?window=bad",
        "/api/v1/sites/nope/referrers",
        "/api/v1/sites/nope/page?path=/a",
        "/api/v1/sites/nope/page",
    ],
)
def test_an_unknown_site_is_a_404(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_site"


@pytest.mark.parametrize("query", ["", "?path=", "?path=tin-tuc", "?path=" + "/a" * 1100])
def test_a_page_without_a_path_is_a_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/sites/demo/page{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_a_very_long_path_is_kept_cut(client: FlaskClient) -> None:
    long = "/" + "a" * 1500
    view(client, f"https://example.vn{long}")
    (page,) = get(client, "/api/v1/sites/demo/pages")["pages"]
    assert page == {"path": long[:256], "pageviews": 1}
    doc = get(client, f"/api/v1/sites/demo/page?path={long}")
    assert doc["windows"]["today"] == {"pageviews": 1}


def test_closed_periods_keep_their_lists_while_a_window_shows_them(
    client: FlaskClient, services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    view(client, "https://example.vn/a", "https://google.com/")
    clock.set(clock() + timedelta(days=1))
    services.housekeeper.run_all()
    keys = services.store.conn.keys
    yesterday = get(client, "/api/v1/sites/demo/pages?window=yesterday")
    assert yesterday["pages"] == [{"path": "/a", "pageviews": 1}]
    closed_day = Period(Grain.DAY, clock().date() - timedelta(days=1))
    for key in (keys.pages("demo", closed_day), keys.referrers("demo", closed_day)):
        ttl = redis_client.pttl(key)
        assert 86_400_000 < ttl <= 2 * 86_400_000, (key, ttl)
    # Today's lists stay as long as today is open.
    view(client, "https://example.vn/b")
    today = Period(Grain.DAY, clock().date())
    assert redis_client.pttl(keys.pages("demo", today)) == -1


def small_lists(settings: Settings) -> Settings:
    """Lists capped low, and limits out of the way: one test sends many views from few
    networks."""
    return replace(
        settings,
        max_pages=50,
        max_referrers=20,
        limit_pageviews=10_000_000,
        limit_new_visitors=10_000_000,
        limit_visits=10_000_000,
        duplicate_window_seconds=0,
    )


def test_the_lists_stay_right_under_heavy_and_one_off_paths_from_several_threads(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    capped = replace(small_lists(settings), max_pages=200, max_referrers=50)
    app = create_app(capped, clock=clock, registry=CollectorRegistry())
    services: Services = app.extensions["analytics"]
    client = app.test_client()
    # 15 heavy pages, viewed 600, 570, ... 180 times, among 12,000 one-off paths, in random
    # order from 6 threads; 10 heavy referrers among 3,000 one-off hosts.
    heavy = {f"/bai-viet/{i}": 600 - 30 * i for i in range(15)}
    heavy_hosts = {f"nguon{i}.vn": 400 - 30 * i for i in range(10)}
    events: list[tuple[str, str]] = []
    for path, n in heavy.items():
        events += [(path, "")] * n
    for host, n in heavy_hosts.items():
        events += [("/", f"https://{host}/x")] * n
    events += [(f"/mot-lan/{i}", "") for i in range(12_000)]
    events += [("/", f"https://mot-lan-{i}.vn/") for i in range(3_000)]
    random.Random(7).shuffle(events)
    threads = 6
    each = len(events) // threads
    events = events[: each * threads]
    sent = Counter(path for path, _ in events)
    sent_hosts = Counter(referrer.split("/")[2] for _, referrer in events if referrer)

    def send(t: int, n: int) -> Outcome:
        path, referrer = events[t * each + n]
        return services.counting.count(
            Hit(
                "demo",
                f"https://example.vn{path}",
                Kind.PAGEVIEW,
                f"10.{t}.{n // 250}.{n % 250}",
                BROWSER_UA,
                referrer=referrer or None,
            )
        )

    outcomes = from_threads(threads, each, send)
    assert Counter(outcomes) == {Outcome.COUNTED: len(events)}

    keys = services.store.conn.keys
    assert redis_client.zcard(keys.pages("demo", TOTAL)) == 200
    assert redis_client.zcard(keys.referrers("demo", TOTAL)) == 50
    for window in ("today", "total"):
        pages = get(client, f"/api/v1/sites/demo/pages?window={window}&limit=16")["pages"]
        assert [p["path"] for p in pages] == ["/", *heavy]  # "/": the views with a referrer
        # Space-Saving's bound: over by at most the one-off views divided by the cap.
        for page in pages:
            true = sent[page["path"]]
            assert true <= page["pageviews"] <= true + len(events) // 200, page
        hosts = get(client, f"/api/v1/sites/demo/referrers?window={window}&limit=10")
        assert [r["host"] for r in hosts["referrers"]] == list(heavy_hosts)
        for entry in hosts["referrers"]:
            true = sent_hosts[entry["host"]]
            assert true <= entry["pageviews"] <= true + len(events) // 50, entry
    # One page's own counts too.
    one = get(client, "/api/v1/sites/demo/page?path=/bai-viet/0")["windows"]["total"]
    assert sent["/bai-viet/0"] <= one["pageviews"] <= sent["/bai-viet/0"] + len(events) // 200


def test_a_flood_of_new_paths_leaves_memory_flat(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    app = create_app(small_lists(settings), clock=clock, registry=CollectorRegistry())
    services: Services = app.extensions["analytics"]
    keys = services.store.conn.keys

    def flood(first: int, n: int) -> None:
        def send(t: int, i: int) -> Outcome:
            k = first + t * n + i
            return services.counting.count(
                Hit(
                    "demo",
                    f"https://example.vn/spam/{k:08d}",
                    Kind.PAGEVIEW,
                    "10.9.9.9",
                    f"{BROWSER_UA} {k}",
                    referrer=f"https://spam{k:08d}.example/",
                )
            )

        assert set(from_threads(4, n, send)) == {Outcome.COUNTED}

    def used() -> dict[str, int]:
        return {
            key: int(redis_client.memory_usage(key) or 0)
            for key in (keys.pages("demo", TOTAL), keys.referrers("demo", TOTAL))
        }

    flood(0, 500)
    before = used()
    flood(10_000, 2_000)
    after = used()
    assert redis_client.zcard(keys.pages("demo", TOTAL)) == 50
    for key, size in after.items():
        assert size <= before[key] * 1.1, (key, before[key], size)


def test_a_closed_period_keeps_the_top_of_its_lists(
    client: FlaskClient, services: Services, clock: FixedClock, redis_client: redis.Redis
) -> None:
    ips = iter(readers(20))
    for path, n in {"/a": 4, "/b": 3, "/c": 2, "/d": 1}.items():
        for _ in range(n):
            view(client, f"https://example.vn{path}", f"https://{path[1]}.vn/", ip=next(ips))
    day = Period(Grain.DAY, clock().date())
    retired = Period(Grain.DAY, clock().date() - timedelta(days=62))
    assert services.store.history.close_period("demo", day, retired, keep=(2, 1))
    keys = services.store.conn.keys
    assert redis_client.zrevrange(keys.pages("demo", day), 0, -1) == [b"/a", b"/b"]
    assert redis_client.zrevrange(keys.referrers("demo", day), 0, -1) == [b"a.vn"]
    # Closed once: a second close trims nothing more.
    assert not services.store.history.close_period("demo", day, retired, keep=(1, 1))
    assert redis_client.zcard(keys.pages("demo", day)) == 2


def test_a_reset_empties_the_lists_of_its_windows_and_its_undo_adds_them_back(
    client: FlaskClient, services: Services, redis_client: redis.Redis
) -> None:
    ips = iter(readers(40))
    for path, n in {"/a": 3, "/b": 2, "/c": 1}.items():
        for _ in range(n):
            view(client, f"https://example.vn{path}", "https://google.com/", ip=next(ips))
    done = services.admin.reset("demo", ["today"], "cli:test")
    assert get(client, "/api/v1/sites/demo/pages")["pages"] == []
    assert get(client, "/api/v1/sites/demo/referrers")["referrers"] == []
    total = get(client, "/api/v1/sites/demo/pages?window=total")["pages"]
    assert total == [
        {"path": "/a", "pageviews": 3},
        {"path": "/b", "pageviews": 2},
        {"path": "/c", "pageviews": 1},
    ]
    for path in ("/a", "/d", "/d", "/e"):
        view(client, f"https://example.vn{path}", ip=next(ips))
    services.admin.list_caps = (3, 1)
    services.admin.undo("demo", done.reset_id, "cli:test")
    # Added back onto the views since, as many as a list keeps: the most viewed.
    assert get(client, "/api/v1/sites/demo/pages")["pages"] == [
        {"path": "/a", "pageviews": 4},
        {"path": "/b", "pageviews": 2},
        {"path": "/d", "pageviews": 2},
    ]
    assert get(client, "/api/v1/sites/demo/referrers")["referrers"] == [
        {"host": "google.com", "pageviews": 6}
    ]
    keys = services.store.conn.keys
    assert not [
        k
        for k in redis_client.scan_iter(match=keys.site_pattern("demo"))
        if b":reset:" in k and (b":pg:" in k or b":rf:" in k)
    ]


def test_every_listed_page_looks_up_to_its_own_count(client: FlaskClient) -> None:
    paths = [
        "/a%2541",  # an encoded percent sign stays encoded
        "/x%2Fy",  # an encoded slash is no slash
        "/x/y",
        "/q%3Fx=1",  # an encoded question mark is no query
        "/x%2%41",
        "/100%",
        "/tin-t%E1%BB%A9c/1",
        "/bad%FFbyte",
        "/%0Anewline",
        "/khoảng-trắng",  # sent unencoded
    ]
    for n, path in enumerate(paths):
        view(client, f"https://example.vn{path}", ip=f"198.51.100.{n + 1}")
    listed = get(client, "/api/v1/sites/demo/pages?limit=100")["pages"]
    assert len(listed) == len(paths)
    for page in listed:
        doc = client.get("/api/v1/sites/demo/page", query_string={"path": page["path"]})
        assert doc.get_json()["path"] == page["path"]
        assert doc.get_json()["windows"]["today"] == {"pageviews": 1}, page
    assert {p["path"] for p in listed} >= {"/a%2541", "/x%2Fy", "/x/y", "/q%3Fx=1"}
    # A path given with a query string or a fragment is the page without them.
    doc = get(client, "/api/v1/sites/demo/page?path=/x/y%3Fa=1%23top")
    assert doc["path"] == "/x/y" and doc["windows"]["today"] == {"pageviews": 1}


def test_a_page_new_to_a_full_list_reads_its_own_count(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    """In a full list a new page takes the least viewed one's place and count; the top list
    shows that estimate, but the page's own number (an article's "Lượt xem") counts its own
    views only, and a closed day keeps those."""
    capped = replace(small_lists(settings), max_pages=10)
    app = create_app(capped, clock=clock, registry=CollectorRegistry())
    services: Services = app.extensions["analytics"]
    client = app.test_client()
    ips = iter(readers(80))
    for n in range(10):
        for _ in range(5):
            view(client, f"https://example.vn/cu/{n}", ip=next(ips))
    for _ in range(2):
        view(client, "https://example.vn/moi", ip=next(ips))
    listed = dict(
        (p["path"], p["pageviews"])
        for p in get(client, "/api/v1/sites/demo/pages?limit=100")["pages"]
    )
    assert len(listed) == 10 and listed["/moi"] == 7  # 5 inherited, then its own 2
    page = get(client, "/api/v1/sites/demo/page?path=/moi")["windows"]
    assert page["today"] == page["total"] == {"pageviews": 2}
    evicted = (set(f"/cu/{n}" for n in range(10)) - set(listed)).pop()
    assert get(client, f"/api/v1/sites/demo/page?path={evicted}")["windows"]["today"] == {
        "pageviews": 0
    }
    clock.set(clock() + timedelta(days=1))
    services.housekeeper.run_all()
    yesterday = get(client, "/api/v1/sites/demo/page?path=/moi")["windows"]["yesterday"]
    assert yesterday == {"pageviews": 2}
    closed = dict(
        (p["path"], p["pageviews"])
        for p in get(client, "/api/v1/sites/demo/pages?window=yesterday&limit=100")["pages"]
    )
    assert closed["/moi"] == 2
    keys = services.store.conn.keys
    assert not redis_client.exists(
        keys.page_errors("demo", Period(Grain.DAY, clock().date() - timedelta(days=1)))
    )


def test_an_undo_keeps_what_pages_inherited_for_the_pages_it_keeps_only(
    settings: Settings, clock: FixedClock, redis_client: redis.Redis
) -> None:
    capped = replace(small_lists(settings), max_pages=10)
    app = create_app(capped, clock=clock, registry=CollectorRegistry())
    services: Services = app.extensions["analytics"]
    services.admin.list_caps = (10, 10)
    client = app.test_client()
    ips = iter(readers(120))
    for path, n in {"/a": 3, "/b": 2}.items():  # a list far from full
        for _ in range(n):
            view(client, f"https://example.vn{path}", ip=next(ips))
    done = services.admin.reset("demo", ["today"], "cli:test")
    for page in "cdefghijkl":
        view(client, f"https://example.vn/{page}", ip=next(ips))
    view(client, "https://example.vn/m", ip=next(ips))  # full: takes /c's place and count
    for page in "defghijkl":
        for _ in range(2):
            view(client, f"https://example.vn/{page}", ip=next(ips))
    services.admin.undo("demo", done.reset_id, "cli:test")
    keys = services.store.conn.keys
    today = Period(Grain.DAY, clock().date())
    listed = {m.decode() for m in redis_client.zrange(keys.pages("demo", today), 0, -1)}
    assert len(listed) == 10 and "/m" not in listed  # the least viewed two gave way: /b, /m
    inherited = {m.decode() for m in redis_client.hkeys(keys.page_errors("demo", today))}
    assert inherited <= listed
    assert get(client, "/api/v1/sites/demo/page?path=/a")["windows"]["today"] == {"pageviews": 3}
