"""widget.js in Chromium: the real service and Redis on one origin, the host page on another."""

from __future__ import annotations

from importlib import resources
from typing import Any

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
from tests.helpers import BROWSER_UA

pytestmark = NEEDS_CHROMIUM

DASH = "–"
VI = ["Đang online", "Hôm nay", "Hôm qua", "Trong tuần", "Tuần trước", "Trong tháng",
      "Tháng trước", "Tất cả"]  # fmt: skip
EN = ["Online now", "Today", "Yesterday", "This week", "Last week", "This month", "Last month",
      "Total"]  # fmt: skip
ROWS = ["online", "today", "yesterday", "this_week", "last_week", "this_month", "last_month",
        "total"]  # fmt: skip
DEFAULT_ROWS = ["online", "today", "this_week", "total"]
LIGHT_HEAD = "rgb(29, 78, 137)"
DARK_BOX = "rgb(31, 41, 51)"

BOX_GEOMETRY = """host => {
  const b = document.querySelector(host).shadowRoot.querySelector('.b');
  const r = b.getBoundingClientRect();
  const style = e => {
    const s = getComputedStyle(e);
    return [s.display, s.fontSize, s.fontFamily, s.fontWeight, s.lineHeight, s.color,
            s.backgroundColor, s.paddingTop, s.paddingLeft, s.borderTopWidth];
  };
  return {
    width: r.width, height: r.height,
    styles: [b, ...b.querySelectorAll('.h, dl, .r, dt, dd')].map(style),
  };
}"""

HEAD_BACKGROUND = """host => getComputedStyle(
  document.querySelector(host).shadowRoot.querySelector('.h')).backgroundColor"""

BOX_BACKGROUND = """host => getComputedStyle(
  document.querySelector(host).shadowRoot.querySelector('.b')).backgroundColor"""

OVERFLOW = """host => {
  const b = document.querySelector(host).shadowRoot.querySelector('.b');
  const right = b.getBoundingClientRect().right;
  return {
    scrolls: b.scrollWidth > b.clientWidth,
    sticks_out: [...b.querySelectorAll('.h, dt, dd')]
      .filter(e => e.getBoundingClientRect().right > right).map(e => e.textContent),
  };
}"""

# Headless Chromium never hides a page, so the test plays the browser's part: it sets
# document.visibilityState and fires visibilitychange as a tab switch does.
SET_VISIBILITY = """state => {
  Object.defineProperty(document, 'visibilityState', {value: state, configurable: true});
  Object.defineProperty(document, 'hidden', {value: state === 'hidden', configurable: true});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def grouped(value: int, lang: str) -> str:
    return f"{value:,}".replace(",", "." if lang == "vi" else ",")


def rows_of(
    doc: dict[str, Any], rows: list[str], *, metric: str | None = None, lang: str = "vi"
) -> list[tuple[str, str]]:
    """What a box must show for a counters document: the box and /counters agree."""
    labels = VI if lang == "vi" else EN
    metric = metric or doc["box_metric"]
    shown = []
    for row in rows:
        value = doc["online"] if row == "online" else doc["windows"][row][metric]
        shown.append((labels[ROWS.index(row)], grouped(value, lang)))
    return shown


def dashes(rows: list[str] = DEFAULT_ROWS) -> list[tuple[str, str]]:
    return [(VI[ROWS.index(row)], DASH) for row in rows]


def counted(service: Service, page: Page, n: int) -> None:
    wait_until(page, lambda: service.hits("counted") == n, f"{n} counted page views")


def sent(browsing: Browsing, service: Service, page: Page, n: int) -> list[dict[str, Any]]:
    """The page views the browser reported sending, once it has reported ``n`` of them."""
    wait_until(page, lambda: len(browsing.hits(service, "pageview")) >= n, f"{n} page view beacons")
    return browsing.hits(service, "pageview")


def widget_source() -> bytes:
    return resources.files("analytics").joinpath("static", "widget.js").read_bytes()


def test_page_loads_and_the_counters_agree(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    loads = 4
    # Refreshed every second, so the box shows the last view without waiting for long.
    url = host.add("/tin-tuc/1", host_page(script_tag(service.url, heartbeat="1")))
    page = browsing.open()
    for n in range(1, loads + 1):
        page.goto(url)
        counted(service, page, n)
        service.clock.advance(30)  # the reader reads a while: past the reload guard
    doc = service.counters()
    assert doc["windows"]["today"]["pageviews"] == loads
    assert doc["windows"]["total"]["visits"] == 1
    assert len(sent(browsing, service, page, loads)) == loads
    wait_for_rows(page, [rows_of(doc, DEFAULT_ROWS)])
    assert rows_of(doc, DEFAULT_ROWS) == [
        ("Đang online", "1"),
        ("Hôm nay", "1"),
        ("Trong tuần", "1"),
        ("Tất cả", "1"),
    ]
    # The same page with the box showing page views.
    url = host.add("/tin-tuc/2", host_page(script_tag(service.url, metric="pageviews")))
    page.goto(url)
    counted(service, page, loads + 1)
    doc = service.counters()
    wait_for_rows(page, [rows_of(doc, DEFAULT_ROWS, metric="pageviews")])
    assert doc["windows"]["total"]["pageviews"] == loads + 1
    assert not browsing.errors and not browsing.console_errors


def test_two_readers_make_two_online(service: Service, host: HostPages, browsing: Browsing) -> None:
    url = host.add("/", host_page(script_tag(service.url, heartbeat="1")))
    first = browsing.open(url)
    counted(service, first, 1)
    # Another browser on the same machine is another visitor.
    second = browsing.open(url, user_agent=BROWSER_UA.replace("Chrome/124", "Chrome/125"))
    counted(service, second, 2)
    doc = service.counters()
    assert doc["online"] == 2
    for page in (first, second):
        wait_for_rows(page, [rows_of(doc, DEFAULT_ROWS)])
        assert boxes(page)[0]["rows"][0] == ["Đang online", "2"]


def test_a_reader_who_stays_stays_online_and_drops_off_after_leaving(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    url = host.add("/bai-viet", host_page(script_tag(service.url, heartbeat="1")))
    page = browsing.open(url)
    counted(service, page, 1)

    def beats() -> int:
        return service.hits("heartbeat")

    service.clock.advance(200)
    before = beats()
    wait_until(page, lambda: beats() > before, "a heartbeat")
    service.clock.advance(200)  # 400 s after the page view: past the 300 s online window
    assert service.counters()["online"] == 1
    wait_for_rows(page, [rows_of(service.counters(), DEFAULT_ROWS)])

    # The reader switches to another tab: no heartbeat while the page is hidden.
    page.evaluate(SET_VISIBILITY, "hidden")
    sent = len(browsing.hits(service, "heartbeat"))
    page.wait_for_timeout(1500)  # one and a half heartbeat periods
    assert len(browsing.hits(service, "heartbeat")) <= sent + 1  # one may have been on its way
    hidden = beats()
    page.wait_for_timeout(1200)
    assert beats() == hidden == len(browsing.hits(service, "heartbeat"))

    # Back on the tab: the heartbeats resume at once.
    page.evaluate(SET_VISIBILITY, "visible")
    wait_until(page, lambda: beats() > hidden, "a heartbeat on return")
    assert service.counters()["online"] == 1

    # Leaving: the tab is hidden, then closed; nothing keeps the reader online.
    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_timeout(1200)
    last = beats()
    assert last == len(browsing.hits(service, "heartbeat"))
    page.context.close()
    service.clock.advance(301)
    assert beats() == last
    assert service.counters()["online"] == 0


def test_two_boxes_in_vietnamese_and_english_count_one_view(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    service.seed_offsets(1_532_906)
    body = (
        f'<div id="vi" data-analytics-box data-rows="{",".join(ROWS)}"></div>'
        '<div id="en" data-analytics-box data-lang="en" data-metric="pageviews"'
        ' data-rows="total, today,bogus"></div>' + script_tag(service.url)
    )
    page = browsing.open(host.add("/", host_page(body)))
    counted(service, page, 1)
    doc = service.counters()
    shown = wait_for_rows(
        page,
        [rows_of(doc, ROWS), rows_of(doc, ["total", "today"], metric="pageviews", lang="en")],
    )
    assert shown[0]["rows"][-1] == ["Tất cả", "1.532.907"]
    assert shown[1]["rows"] == [["Total", "1,532,907"], ["Today", "1"]]
    assert [(b["host"], b["role"], b["label"], b["title"], b["lang"]) for b in shown] == [
        ("vi", "region", "Thống kê truy cập", "Thống kê truy cập", "vi"),
        ("en", "region", "Visitor statistics", "Visitor statistics", "en"),
    ]
    assert len(sent(browsing, service, page, 1)) == 1
    assert doc["windows"]["today"]["pageviews"] == 1


def test_data_count_false_counts_nothing_and_renders_after_the_script(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    body = "<p>Trước</p>" + script_tag(service.url, count="false", heartbeat="1") + "<p>Sau</p>"
    page = browsing.open(host.add("/", host_page(body)))
    reads = f"{service.url}/api/v1/sites/demo/counters"
    # Refreshes come and go, and still no beacon: neither a page view nor a heartbeat.
    wait_until(page, lambda: sum(r.url == reads for r in browsing.requests) >= 3, "three refreshes")
    assert browsing.hits(service) == []
    assert service.hits("counted") == service.hits("heartbeat") == 0
    wait_for_rows(page, [rows_of(service.counters(), DEFAULT_ROWS)])
    assert service.pageviews("total") == 0
    placed = page.evaluate(
        "() => !!document.querySelector('script[data-site]').nextElementSibling.shadowRoot"
    )
    assert placed


def test_a_strict_csp_page_works_without_a_console_error(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    csp = (
        f"default-src 'none'; script-src {service.url}; connect-src {service.url}; "
        f"img-src {service.url}; style-src 'none'"
    )
    url = host.add(
        "/csp",
        host_page('<div id="box" data-analytics-box></div>' + script_tag(service.url)),
        {"Content-Security-Policy": csp},
    )
    page = browsing.open()
    response = page.goto(url)
    assert response is not None and response.headers["content-security-policy"] == csp
    counted(service, page, 1)
    wait_for_rows(page, [rows_of(service.counters(), DEFAULT_ROWS)])
    # Styled too: the box's sheet is adopted, not an inline style the policy refuses.
    assert page.evaluate(HEAD_BACKGROUND, "#box") == LIGHT_HEAD
    assert browsing.errors == []
    assert browsing.console_errors == []


def test_hostile_page_styles_leave_the_box_intact(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    body = (
        '<div id="box" data-analytics-box></div>'
        '<dl id="own"><dt>x</dt><dd>y</dd></dl><p id="mine" class="b h r">z</p>'
        + script_tag(service.url, count="false")
    )
    hostile = (
        "<style>* { font-size: 40px !important; display: inline !important;"
        " color: red !important; } #box { font-family: serif; line-height: 3 }</style>"
    )
    normal = browsing.open(host.add("/", host_page(body)))
    attacked = browsing.open(host.add("/hostile", host_page(body, head=hostile)))
    expected = [rows_of(service.counters(), DEFAULT_ROWS)]
    wait_for_rows(normal, expected)
    wait_for_rows(attacked, expected)
    host_style = "() => [getComputedStyle(box).fontSize, getComputedStyle(box).display]"
    assert attacked.evaluate(host_style) == ["40px", "inline"]  # the attack reached the host
    assert attacked.evaluate(BOX_GEOMETRY, "#box") == normal.evaluate(BOX_GEOMETRY, "#box")
    # Nor do the box's styles reach the page.
    page_styles = normal.evaluate(
        """() => [getComputedStyle(document.querySelector('#own dd')).marginLeft,
                  getComputedStyle(document.querySelector('#mine')).backgroundColor,
                  getComputedStyle(document.querySelector('#mine')).paddingTop]"""
    )
    assert page_styles == ["40px", "rgba(0, 0, 0, 0)", "0px"]
    assert browsing.errors == []


def test_with_the_service_down_the_page_loads_and_shows_dashes(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    page = browsing.open()
    # The script itself comes from the browser's cache or a CDN; the service is gone.
    page.route(
        f"{down}/widget.js",
        lambda route: route.fulfill(body=widget_source(), content_type="application/javascript"),
    )
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    body = '<div id="box" data-analytics-box></div><p id="after">Tin tức</p>'
    page.goto(host.add("/", host_page(body + script_tag(down))))
    assert page.text_content("#after") == "Tin tức"
    wait_until(
        page, lambda: f"{down}/api/v1/sites/demo/counters" in failed, "the counters read to fail"
    )
    wait_for_rows(page, [dashes()])
    assert browsing.errors == []
    # The box is as tall with dashes as with numbers: nothing jumps when they arrive.
    live = browsing.open(
        host.add("/live", host_page(body + script_tag(service.url, count="false")))
    )
    wait_for_rows(live, [rows_of(service.counters(), DEFAULT_ROWS)])
    assert (
        page.evaluate(BOX_GEOMETRY, "#box")["height"]
        == live.evaluate(BOX_GEOMETRY, "#box")["height"]
    )


def test_a_slow_service_shows_dashes_then_numbers_without_a_layout_jump(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    page = browsing.open()
    held: list[Route] = []
    reads = f"{service.url}/api/v1/sites/demo/counters"
    page.route(reads, lambda route: held.append(route))
    body = '<div id="box" data-analytics-box></div><p id="after">Tin tức</p>'
    page.goto(host.add("/", host_page(body + script_tag(service.url))))
    wait_until(page, lambda: bool(held), "the counters read")
    wait_for_rows(page, [dashes()])
    geometry = page.evaluate("() => document.querySelector('#after').getBoundingClientRect().y")
    height = page.evaluate(BOX_GEOMETRY, "#box")["height"]
    for route in held:
        route.continue_()
    page.unroute(reads)
    counted(service, page, 1)
    wait_for_rows(page, [rows_of(service.counters(), DEFAULT_ROWS)])
    assert page.evaluate(BOX_GEOMETRY, "#box")["height"] == height
    assert (
        page.evaluate("() => document.querySelector('#after').getBoundingClientRect().y")
        == geometry
    )
    assert browsing.errors == []


def test_light_and_dark_boxes_look_right(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    service.seed_offsets(1_532_906)
    body = (
        '<div style="display:flex;gap:24px;padding:16px;background:#f5f7fa">'
        '<aside id="light" style="width:18em" data-analytics-box></aside>'
        '<aside id="dark" style="width:18em" data-analytics-box data-theme="dark"></aside>'
        '<aside id="auto" style="width:18em" data-analytics-box data-theme="auto"'
        ' data-lang="en" data-metric="pageviews"></aside></div>' + script_tag(service.url)
    )
    url = host.add("/", host_page(body))
    light = browsing.open(url)
    counted(service, light, 1)
    doc = service.counters()
    expected = [
        rows_of(doc, DEFAULT_ROWS),
        rows_of(doc, DEFAULT_ROWS),
        rows_of(doc, DEFAULT_ROWS, metric="pageviews", lang="en"),
    ]
    wait_for_rows(light, expected)
    ARTIFACTS.mkdir(exist_ok=True)
    light.locator("#light .b").screenshot(path=ARTIFACTS / "widget-light.png")
    light.locator("#dark .b").screenshot(path=ARTIFACTS / "widget-dark.png")
    assert light.evaluate(BOX_BACKGROUND, "#light") == "rgb(255, 255, 255)"
    assert light.evaluate(BOX_BACKGROUND, "#dark") == DARK_BOX
    assert light.evaluate(BOX_BACKGROUND, "#auto") == "rgb(255, 255, 255)"
    # "auto" follows the reader's colour scheme.
    dark = browsing.open(url, color_scheme="dark")
    wait_for_rows(dark, expected)
    assert dark.evaluate(BOX_BACKGROUND, "#auto") == DARK_BOX
    dark.locator("#auto .b").screenshot(path=ARTIFACTS / "widget-auto-dark-en.png")


def test_the_box_reflows_at_200_percent_zoom(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    """200% zoom on a 1280 px window: a 640 px viewport at twice the pixel density."""
    service.seed_offsets(1_532_906)
    body = (
        '<aside id="box" style="width:9em" data-analytics-box'
        f' data-rows="{",".join(ROWS)}"></aside>' + script_tag(service.url, count="false")
    )
    page = browsing.open(
        host.add("/", host_page(body)),
        viewport={"width": 640, "height": 400},
        device_scale_factor=2,
    )
    wait_for_rows(page, [rows_of(service.counters(), ROWS)])
    overflow = page.evaluate(OVERFLOW, "#box")
    assert overflow == {"scrolls": False, "sticks_out": []}
    page.locator("#box .b").screenshot(path=ARTIFACTS / "widget-zoom-200.png")


def test_spa_navigation_counts_a_page_view(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    url = host.add("/app", host_page(script_tag(service.url, spa="true")))
    page = browsing.open(url)
    counted(service, page, 1)
    page.evaluate("history.pushState({}, '', '/app/tin-tuc/2')")
    counted(service, page, 2)
    page.evaluate("history.replaceState({}, '', '/app/tin-tuc/2?tab=1')")  # not a navigation
    page.evaluate("history.pushState({}, '', '/app/tin-tuc/3')")
    counted(service, page, 3)
    service.clock.advance(11)
    page.go_back()  # popstate
    counted(service, page, 4)
    views = sent(browsing, service, page, 4)
    # Each view's referrer is the view before it.
    assert [(v["url"], v["referrer"]) for v in views] == [
        (url, ""),
        (f"{host.origin}/app/tin-tuc/2", url),
        (f"{host.origin}/app/tin-tuc/3", f"{host.origin}/app/tin-tuc/2"),
        (f"{host.origin}/app/tin-tuc/2?tab=1", f"{host.origin}/app/tin-tuc/3"),
    ]
    assert service.pageviews() == 4
    assert browsing.errors == []
