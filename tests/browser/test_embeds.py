"""The README's embed snippets in Chromium, as a site copies them: the iframe shows the whole
box, without a scrollbar; and the page at / loads under its own strict CSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Frame

from tests.browser.helpers import (
    NEEDS_CHROMIUM,
    Browsing,
    HostPages,
    Service,
    host_page,
    wait_until,
)

pytestmark = NEEDS_CHROMIUM

README = Path(__file__).resolve().parents[2] / "README.md"
IFRAME = re.compile(r"<iframe\s[^>]*></iframe>", re.DOTALL)

FIT = """() => {
  const root = document.scrollingElement;
  const box = document.querySelector('.box').getBoundingClientRect();
  return {
    rows: document.querySelectorAll('.row').length,
    box: [box.width, box.height],
    sticks_out: box.right > innerWidth || box.bottom > innerHeight,
    scrolls: root.scrollHeight > root.clientHeight || root.scrollWidth > root.clientWidth,
  };
}"""


def readme_iframe() -> str:
    found = IFRAME.findall(README.read_text(encoding="utf-8"))
    assert len(found) == 1, "the README shows one iframe snippet"
    return found[0]


def box_frame(browsing: Browsing, url: str) -> Frame:
    page = browsing.open(url)
    frame = page.frame_locator("iframe").locator(".box")
    frame.wait_for()
    found = [f for f in page.frames if "/widget/" in f.url]
    assert len(found) == 1
    wait_until(page, lambda: found[0].evaluate("document.readyState") == "complete", "the box")
    return found[0]


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_readme_iframe_shows_the_whole_box_without_a_scrollbar(
    service: Service, host: HostPages, browsing: Browsing, lang: str
) -> None:
    service.seed_offsets(1_532_907)  # the numbers of a long-lived portal, not a lone 0
    snippet = readme_iframe().replace("https://STATS-HOST", service.url)
    snippet = snippet.replace("lang=vi", f"lang={lang}")
    assert 'width="' in snippet and 'height="' in snippet
    frame = box_frame(browsing, host.add("/", host_page(snippet)))
    fit = frame.evaluate(FIT)
    assert fit["rows"] == 4
    assert fit["box"][1] > 150, fit  # the box is really drawn, with its four rows
    assert not fit["sticks_out"], fit
    assert not fit["scrolls"], fit
    border = frame.page.evaluate(
        "getComputedStyle(document.querySelector('iframe')).borderTopWidth"
    )
    assert border == "0px"


def test_the_default_frame_would_cut_the_box(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    """Why the snippet has a size: in a frame of the default 300x150 the box scrolls."""
    service.seed_offsets(1_532_907)
    unsized = f'<iframe src="{service.url}/widget/demo" title="Thống kê truy cập"></iframe>'
    fit = box_frame(browsing, host.add("/", host_page(unsized))).evaluate(FIT)
    assert fit["sticks_out"] and fit["scrolls"], fit


def test_all_eight_rows_fit_a_frame_270_high(
    service: Service, host: HostPages, browsing: Browsing
) -> None:
    """docs/api.md: every row needs a frame 270 px high."""
    rows = "online,today,yesterday,this_week,last_week,this_month,last_month,total"
    snippet = (
        f'<iframe src="{service.url}/widget/demo?rows={rows}" title="Thống kê truy cập" '
        'width="280" height="270" style="border:0"></iframe>'
    )
    fit = box_frame(browsing, host.add("/", host_page(snippet))).evaluate(FIT)
    assert fit["rows"] == 8
    assert not fit["sticks_out"] and not fit["scrolls"], fit


def test_the_home_page_is_styled_under_its_csp(service: Service, browsing: Browsing) -> None:
    page = browsing.open(service.url + "/")
    background = page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor")
    assert background == "rgb(29, 78, 137)"  # the inline style was allowed by its hash
    links = page.eval_on_selector_all("a", "links => links.map(a => a.pathname)")
    assert {"/demo", "/admin", "/openapi.json"} <= set(links)
    assert browsing.errors == []
    assert browsing.console_errors == []
