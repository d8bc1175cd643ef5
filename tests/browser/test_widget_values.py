"""widget.js fills the page in Chromium: [data-analytics-value] elements, the box's page row,
data-box="false", and a page made for busuanzi with only its script tag changed."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, Route

from analytics.embedded import free_port
from tests.browser.helpers import (
    ARTIFACTS,
    NEEDS_CHROMIUM,
    Browsing,
    HostPages,
    Service,
    boxes,
    host_page,
    script_tag,
    wait_for_rows,
    wait_until,
)

pytestmark = NEEDS_CHROMIUM


BUSUANZI_TAG = (
    '<script async src="//busuanzi.ibruce.info/busuanzi/2.3/busuanzi.pure.mini.js"></script>'
)
BUSUANZI_IDS = ("site_pv", "site_uv", "page_pv")


def busuanzi_page(title: str, tag: str) -> str:
    """A post of a Hexo blog with the NexT theme's busuanzi counters, as the theme writes them:
    the containers hidden until busuanzi's script has the numbers."""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title} | 博客</title>
<style>
body{{margin:0;font:15px/1.6 "PingFang SC","Microsoft YaHei",sans-serif;
  background:#f5f7f9;color:#555}}
.post{{max-width:40em;margin:2em auto;background:#fff;padding:1.5em 2em}}
.post-title{{margin:0;color:#222;font-size:1.6em}}
.post-meta{{color:#999;font-size:.85em;margin:.4em 0 1em}}
footer{{text-align:center;padding:1.5em;font-size:.9em}}
.busuanzi-count .post-meta-item{{margin:0 .5em}}
</style></head>
<body>
<main><article class="post">
<h1 class="post-title">{title}</h1>
<div class="post-meta">
<span class="post-meta-item">发表于 2026-11-26</span>
<span class="post-meta-item" title="阅读次数" id="busuanzi_container_page_pv"
  style="display: none;">
  · 阅读次数：<span id="busuanzi_value_page_pv"></span>
</span>
</div>
<p id="body">这是一篇文章的正文。</p>
</article></main>
<footer>
<div class="copyright">&copy; 2026 博客 · 由 Hexo 强力驱动 · 主题 NexT</div>
{tag}
<div class="busuanzi-count">
<span class="post-meta-item" id="busuanzi_container_site_uv" style="display: none;">
  本站访客数 <span id="busuanzi_value_site_uv"></span> 人
</span>
<span class="post-meta-item" id="busuanzi_container_site_pv" style="display: none;">
  本站总访问量 <span id="busuanzi_value_site_pv"></span> 次
</span>
</div>
</footer>
</body></html>
"""


BUSUANZI_STATE = """() => Object.fromEntries(['site_pv', 'site_uv', 'page_pv'].map(id => [id, [
  document.getElementById('busuanzi_value_' + id).textContent,
  document.getElementById('busuanzi_container_' + id).style.display,
  getComputedStyle(document.getElementById('busuanzi_container_' + id)).display,
]]))"""

VALUES = """() => [...document.querySelectorAll('[data-analytics-value]')].map(
  e => [e.getAttribute('data-analytics-value'), e.textContent])"""


def busuanzi(page: Page) -> dict[str, list[str]]:
    state: dict[str, list[str]] = page.evaluate(BUSUANZI_STATE)
    return state


def shown(site_pv: int, site_uv: int, page_pv: int) -> dict[str, list[str]]:
    """What busuanzi's script leaves: the numbers in, each container shown inline."""
    numbers = {"site_pv": site_pv, "site_uv": site_uv, "page_pv": page_pv}
    return {id: [f"{n:,}".replace(",", "."), "inline", "inline"] for id, n in numbers.items()}


def wait_for(page: Page, read: Any, expected: Any, what: str) -> None:
    seen: list[Any] = [None]

    def check() -> bool:
        seen[0] = read(page)
        return bool(seen[0] == expected)

    try:
        wait_until(page, check, what)
    except AssertionError:
        raise AssertionError(f"{what}: {seen[0]}, not {expected}") from None


def counted(service: Service, page: Page, n: int) -> None:
    wait_until(page, lambda: service.hits("counted") == n, f"{n} counted page views")


def reads(browsing: Browsing, service: Service, route: str) -> list[str]:
    return [
        r.url
        for r in browsing.requests
        if r.url.startswith(f"{service.url}/api/v1/sites/demo{route}")
    ]


def page_views(service: Service, path: str) -> int:
    response = service.app.test_client().get("/api/v1/sites/demo/page", query_string={"path": path})
    assert response.status_code == 200
    return int(response.get_json()["windows"]["total"]["pageviews"])


def test_a_busuanzi_page_switches_by_its_script_tag_alone(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    ours = script_tag(service.url, box="false")
    assert ours == (
        f'<script async src="{service.url}/widget.js" data-site="demo" data-box="false"></script>'
    )
    posts = {
        "/2026/11/26/xin-chao/": "你好，世界",
        "/2026/11/26/tin-tức/": "Tin tức",  # a path the browser sends percent-encoded
    }
    urls = {}
    for path, title in posts.items():
        written = busuanzi_page(title, BUSUANZI_TAG)
        switched = written.replace(BUSUANZI_TAG, ours)
        assert switched.count(ours) == 1 and switched.replace(ours, BUSUANZI_TAG) == written
        urls[path] = host.add(path.replace("ứ", "%E1%BB%A9"), switched)
    first, second = urls.values()

    page = browsing.open()
    held: list[Route] = []
    counters = f"{service.url}/api/v1/sites/demo/counters"
    page.route(counters, lambda route: held.append(route))
    page.goto(first)
    wait_until(page, lambda: bool(held), "the counters read")
    # Until the numbers are in, the containers stay as the page wrote them: hidden.
    hidden = {id: ["", "none", "none"] for id in BUSUANZI_IDS}
    assert busuanzi(page) == hidden
    for route in held:
        route.continue_()
    page.unroute(counters)
    counted(service, page, 1)
    service.clock.advance(30)  # the reader reads a while: past the reload guard and the cache
    wait_for(page, busuanzi, shown(1, 1, 1), "busuanzi's elements")

    # This page's views across reloads; the site's across pages.
    views = {"/2026/11/26/xin-chao/": 1, "/2026/11/26/tin-tức/": 0}
    for n, (url, path) in enumerate(
        [(first, "/2026/11/26/xin-chao/")] * 2 + [(second, "/2026/11/26/tin-tức/")] * 3, start=2
    ):
        page.goto(url)
        counted(service, page, n)
        service.clock.advance(30)
        views[path] += 1
        wait_for(page, busuanzi, shown(n, 1, views[path]), f"busuanzi's elements at view {n}")
    assert views == {"/2026/11/26/xin-chao/": 3, "/2026/11/26/tin-tức/": 3}
    assert page_views(service, "/2026/11/26/xin-chao/") == 3
    assert page_views(service, "/2026/11/26/tin-tức/") == 3
    doc = service.counters()
    assert doc["windows"]["total"]["pageviews"] == 6
    assert doc["windows"]["total"]["visitors"] == 1
    # A page made for busuanzi gets no box it did not have, and its own text is intact.
    assert boxes(page) == []
    assert page.text_content("#body") == "这是一篇文章的正文。"
    assert page.title() == "Tin tức | 博客"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "widget-busuanzi.png", full_page=True)
    assert browsing.errors == [] and browsing.console_errors == []


def test_a_busuanzi_page_without_data_box_false_gets_the_box_where_the_tag_stands(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    asked = host.add("/asked", busuanzi_page("Box", script_tag(service.url)))
    page = browsing.open(asked)
    counted(service, page, 1)
    service.clock.advance(30)
    wait_for(page, busuanzi, shown(1, 1, 1), "busuanzi's elements")
    wait_for_rows(
        page, [[("Đang online", "1"), ("Hôm nay", "1"), ("Trong tuần", "1"), ("Tất cả", "1")]]
    )
    placed = page.evaluate(
        "() => !!document.querySelector('script[data-site]').nextElementSibling.shadowRoot"
    )
    assert placed
    # A box element of its own is drawn as on any page.
    element = busuanzi_page(
        "Box", '<div id="box" data-analytics-box></div>' + script_tag(service.url, count="false")
    )
    page.goto(host.add("/element", element))
    wait_for_rows(
        page, [[("Đang online", "1"), ("Hôm nay", "1"), ("Trong tuần", "1"), ("Tất cả", "1")]]
    )
    assert boxes(page)[0]["host"] == "box"
    wait_for(page, busuanzi, shown(1, 1, 0), "busuanzi's elements")
    assert browsing.errors == [] and browsing.console_errors == []


NAMED = [
    ("online", "–"),
    ("today.visits", "–"),
    ("this_month.visitors", "–"),
    ("total.pageviews", "–"),
    ("page.pageviews", "–"),
]
UNKNOWN = [
    "bogus", "today.bogus", "page.visits", "total", "", "online.x", "constructor.length",
    "constructor.visits", "__proto__.pageviews",
]  # fmt: skip


def values_page(service: Service, **script: str) -> str:
    named = "".join(
        f'<p><span data-analytics-value="{name}">{text}</span></p>' for name, text in NAMED
    )
    english = (
        '<p lang="en"><span data-analytics-value="total.pageviews" data-lang="en">-</span>'
        '<span data-analytics-value="page.pageviews" data-lang="en">-</span></p>'
    )
    unknown = "".join(f'<i data-analytics-value="{name}">keep {name}</i>' for name in UNKNOWN)
    return host_page(named + english + unknown + script_tag(service.url, **script))


def test_value_elements_show_their_numbers_in_vietnamese_and_english(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    service.seed_offsets(1_532_900)
    url = host.add("/tin-tuc/1", values_page(service))
    page = browsing.open()
    for n in range(1, 8):
        page.goto(url)
        counted(service, page, n)
        service.clock.advance(30)
    doc = service.counters()
    assert doc["windows"]["total"]["pageviews"] == 1_532_907
    assert (doc["online"], doc["windows"]["today"]["visits"]) == (1, 1)
    expected = [
        ("online", "1"),
        ("today.visits", "1"),
        ("this_month.visitors", "1"),
        ("total.pageviews", "1.532.907"),
        ("page.pageviews", "7"),
        ("total.pageviews", "1,532,907"),
        ("page.pageviews", "7"),
        *[(name, f"keep {name}") for name in UNKNOWN],
    ]
    wait_for(page, lambda p: [tuple(v) for v in p.evaluate(VALUES)], expected, "the values")
    # The box is drawn as before, where the script stands.
    assert [b["title"] for b in boxes(page)] == ["Thống kê truy cập"]
    assert page_views(service, "/tin-tuc/1") == 7
    assert browsing.errors == [] and browsing.console_errors == []


def test_the_page_is_read_only_where_the_page_shows_it(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    plain = host_page('<b data-analytics-value="total.pageviews">-</b>' + script_tag(service.url))
    page = browsing.open(host.add("/plain", plain))
    counted(service, page, 1)
    service.clock.advance(30)
    wait_for(page, lambda p: p.text_content("b"), "1", "total.pageviews")
    page.wait_for_timeout(2600)  # the second read, once the read cache has the view
    assert len(reads(browsing, service, "/counters")) == 2
    assert reads(browsing, service, "/page") == []
    # A box with the page row asks for it, with the page's path.
    rows = host_page(
        '<div data-analytics-box data-rows="online,total,page"></div>'
        + script_tag(service.url, count="false")
    )
    page.goto(host.add("/b%C3%A0i-vi%E1%BA%BFt/2", rows))  # /bài-viết/2
    wait_for_rows(page, [[("Đang online", "1"), ("Tất cả", "1"), ("Lượt xem trang này", "0")]])
    assert reads(browsing, service, "/page") == [
        f"{service.url}/api/v1/sites/demo/page?path=%2Fb%25C3%25A0i-vi%25E1%25BA%25BFt%2F2"
    ]


def test_the_box_shows_this_pages_views_in_a_page_row(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    service.seed_offsets(1_532_900)
    body = (
        '<div style="display:flex;gap:24px;padding:16px;background:#f5f7fa">'
        '<aside id="vi" style="width:18em" data-analytics-box'
        ' data-rows="online,today,total,page"></aside>'
        '<aside id="en" style="width:18em" data-analytics-box data-lang="en"'
        ' data-metric="pageviews" data-rows="page,total"></aside></div>'
    )
    url = host.add("/tin-tuc/3", host_page(body + script_tag(service.url)))
    other = host.add("/tin-tuc/4", host_page(script_tag(service.url)))
    page = browsing.open()
    for n, at in enumerate([url, other, url, url], start=1):
        page.goto(at)
        counted(service, page, n)
        service.clock.advance(30)
    expected = [
        [
            ("Đang online", "1"),
            ("Hôm nay", "1"),
            ("Tất cả", "1.532.901"),
            ("Lượt xem trang này", "3"),
        ],
        [("Views of this page", "3"), ("Total", "1,532,904")],
    ]
    wait_for_rows(page, expected)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#vi .b").screenshot(path=ARTIFACTS / "widget-page-row.png")
    page.locator("#en .b").screenshot(path=ARTIFACTS / "widget-page-row-en.png")
    assert browsing.errors == [] and browsing.console_errors == []


def test_data_box_false_draws_no_box_and_fills_the_page(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    body = (
        '<div id="box" data-analytics-box></div>'
        '<p>Lượt xem: <span id="views" data-analytics-value="page.pageviews">…</span></p>'
        '<p id="busuanzi_container_site_pv" style="display:none">'
        '<span id="busuanzi_value_site_pv"></span></p>'
    )
    page = browsing.open(host.add("/", host_page(body + script_tag(service.url, box="false"))))
    counted(service, page, 1)
    service.clock.advance(30)
    wait_for(page, lambda p: p.text_content("#views"), "1", "the page's views")
    wait_for(
        page,
        lambda p: p.evaluate(BUSUANZI_STATE.replace("'site_uv', 'page_pv'", "")),
        {"site_pv": ["1", "inline", "inline"]},
        "busuanzi's site_pv",
    )
    assert boxes(page) == []
    assert page.evaluate("() => document.querySelector('#box').shadowRoot") is None
    assert (
        page.evaluate("() => document.querySelector('script[data-site]').nextElementSibling")
        is None
    )
    assert browsing.errors == [] and browsing.console_errors == []


@pytest.mark.parametrize("failure", ["unknown site", "service down"])
def test_a_failed_read_leaves_the_page_as_it_was(
    service: Service, host: HostPages, browsing: Browsing, failure: str
) -> None:
    origin = service.url if failure == "unknown site" else f"http://127.0.0.1:{free_port()}"
    site = "nope" if failure == "unknown site" else "demo"
    body = (
        '<p id="text">Lượt xem: <span data-analytics-value="page.pageviews">?</span>, '
        '<span data-analytics-value="online">?</span>, '
        '<span data-analytics-value="total.pageviews">?</span></p>'
        '<p id="busuanzi_container_page_pv" style="display:none">'
        '<span id="busuanzi_value_page_pv">?</span></p>'
    )
    page = browsing.open()
    if failure == "service down":
        source = service.app.test_client().get("/widget.js").get_data()
        page.route(
            f"{origin}/widget.js",
            lambda route: route.fulfill(body=source, content_type="application/javascript"),
        )
    page.goto(host.add("/tin-tuc/1", host_page(body + script_tag(origin, site=site, box="false"))))
    read = f"{origin}/api/v1/sites/{site}/"
    wanted = [read + "counters", read + "page?path=%2Ftin-tuc%2F1"]

    def asked() -> list[str]:
        return [r.url for r in browsing.requests if r.url.startswith(read)]

    # A second read starts only once the first has ended: the first one's failure was handled.
    wait_until(page, lambda: asked() == wanted * 2, "a second read")
    page.wait_for_timeout(200)
    assert page.text_content("#text") == "Lượt xem: ?, ?, ?"
    assert page.evaluate(BUSUANZI_STATE.replace("'site_pv', 'site_uv', ", "")) == {
        "page_pv": ["?", "none", "none"]
    }
    assert browsing.errors == []
    # Only the browser's own line for each failed request, never one of the script's.
    assert all(e.startswith("Failed to load resource") for e in browsing.console_errors), (
        browsing.console_errors
    )


def test_the_demo_page_shows_its_views(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    page = browsing.open(f"{service.url}/demo")
    counted(service, page, 1)
    service.clock.advance(30)
    views = "() => document.querySelector('header [data-analytics-value]').textContent"
    wait_for(page, lambda p: p.evaluate(views), "1", "Lượt xem")
    assert "Lượt xem: 1" in page.inner_text("header")
    rows = wait_for_rows(
        page,
        [
            [
                ("Đang online", "1"),
                ("Hôm nay", "1"),
                ("Trong tuần", "1"),
                ("Tất cả", "1"),
                ("Lượt xem trang này", "1"),
            ]
        ],
    )
    assert len(rows) == 1
    wait_for(
        page,
        lambda p: p.inner_text("footer").split(": ")[1],
        "hôm nay 1 lượt xem, tất cả 1.",
        "the footer",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "widget-demo.png", full_page=True)
    assert browsing.errors == [] and browsing.console_errors == []
