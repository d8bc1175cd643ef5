"""The docs in Chromium: a page renders under its CSP, and fragment links, on the page and to
another doc, land on their heading; the home page's snippet names the service's own origin."""

from __future__ import annotations

from tests.browser.helpers import NEEDS_CHROMIUM, Browsing, Service

pytestmark = NEEDS_CHROMIUM

IN_VIEW = """id => {
  const top = document.getElementById(id).getBoundingClientRect().top;
  return scrollY > 0 && Math.abs(top) < 5;
}"""


def test_the_api_reference_renders_and_its_fragment_links_land(
    service: Service, browsing: Browsing
) -> None:
    page = browsing.open(service.url + "/docs/api")
    assert page.locator("h1").inner_text() == "API reference"
    background = page.evaluate("getComputedStyle(document.querySelector('nav')).backgroundColor")
    assert background == "rgb(29, 78, 137)"  # the inline style was allowed by its hash
    assert not page.evaluate(IN_VIEW, "admin-api")
    page.locator('main a[href="#admin-api"]').first.click()
    page.wait_for_function(IN_VIEW, arg="admin-api")
    assert page.evaluate("location.hash") == "#admin-api"
    page.locator('a[href="/docs/readme#configuration"]').first.click()
    page.wait_for_url(service.url + "/docs/readme#configuration")
    page.wait_for_function(IN_VIEW, arg="configuration")
    assert page.locator("#configuration").inner_text() == "Configuration"
    assert browsing.errors == []
    assert browsing.console_errors == []


def test_the_home_pages_snippet_names_the_service(service: Service, browsing: Browsing) -> None:
    page = browsing.open(service.url + "/")
    snippet = page.locator("pre code").inner_text()
    assert f'src="{service.url}/widget.js"' in snippet
    page.locator('a[href="/docs/"]').click()
    page.wait_for_url(service.url + "/docs/")
    assert page.locator("h1").inner_text() == "Documentation"
    assert browsing.console_errors == []
