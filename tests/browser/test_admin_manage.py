"""The admin page for real use, in Chromium against the real service: sites added, edited and
deleted, the embed snippets, top pages and referrers, the audit log, the history as CSV, both
languages, and a layout that fits a desktop and a phone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page

from analytics.render import LABELS, format_count
from analytics.settings import Settings
from tests.browser.helpers import (
    ARTIFACTS,
    NEEDS_CHROMIUM,
    Browsing,
    HostPages,
    Service,
    boxes,
    wait_until,
)
from tests.browser.test_admin_page import (
    HCM,
    TODAY,
    TOKEN,
    history,
    in_english,
    seed_history,
    sign_in,
    wait_for_status,
    wait_for_table,
)
from tests.helpers import run_cli

pytestmark = NEEDS_CHROMIUM

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
FIELD_ERROR = '(form, name) => form.querySelector(`.field[data-field="${name}"] .field-error`)'

OVERFLOW = """() => {
  const wide = (e) => e.scrollWidth > e.clientWidth;
  const root = document.documentElement;
  return {
    document: [root.scrollWidth, root.clientWidth],
    cards: [...document.querySelectorAll('.card')].filter(c => c.offsetParent && wide(c))
      .map(c => [c.id, c.scrollWidth, c.clientWidth]),
    scrolled: [...document.querySelectorAll('main *')]
      .filter(e => e.offsetParent && !['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName)
        && getComputedStyle(e).overflowX !== 'visible' && wide(e))
      .map(e => e.id || e.className || e.tagName),
    cells: [...document.querySelectorAll('main td, main th, main pre')]
      .filter(e => e.offsetParent && wide(e)).map(e => e.textContent),
  };
}"""


@pytest.fixture
def service_settings(settings: Settings) -> Settings:
    return settings.replace(admin_token=TOKEN)


def field_error(page: Page, form: str, name: str) -> str | None:
    """The error shown next to a field of a form, or None when none is shown."""
    found = page.evaluate(
        f"""() => {{
          const error = ({FIELD_ERROR})(document.getElementById('{form}'), '{name}');
          return error && !error.hidden ? error.textContent : null;
        }}"""
    )
    return found if isinstance(found, str) else None


def signed_in(
    browsing: Browsing, service: Service, *, english: bool = False, **options: Any
) -> Page:
    page = browsing.open(f"{service.url}/admin", timezone_id="Asia/Ho_Chi_Minh", **options)
    if english:
        in_english(page)
    sign_in(page)
    wait_for_status(page, "Signed in" if english else "Đã đăng nhập")
    return page


def audit_rows(page: Page) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll('#audit-log tbody tr')].map(r => ({
          action: r.dataset.action,
          cells: [...r.cells].map(c => c.textContent),
          datetime: r.querySelector('time') && r.querySelector('time').getAttribute('datetime'),
        }))"""
    )
    return found


def test_a_site_is_added_edited_and_deleted_with_errors_next_to_their_field(
    service: Service, browsing: Browsing
) -> None:
    page = signed_in(browsing, service)
    page.click("#add-site")
    form = "#add-form"
    # Asia/Ho_Chi_Minh is the first of the zones offered, and the new site's default.
    zones = page.evaluate(
        f"() => [...document.querySelector('{form} [name=timezone]').options].map(o => o.value)"
    )
    assert zones[0] == "Asia/Ho_Chi_Minh" and "Europe/Berlin" in zones and len(zones) > 300
    page.fill(f"{form} [name=id]", "tin-tuc")
    page.fill(f"{form} [name=name]", "Tin tức <Lào Cai>")
    page.fill(f"{form} [name=origins]", "https://tintuc.example\nhttps://www.tintuc.example")
    page.select_option(f"{form} [name=timezone]", "Europe/Berlin")
    page.select_option(f"{form} [name=week_start]", "sunday")
    page.select_option(f"{form} [name=box_metric]", "pageviews")
    page.fill(f"{form} [name=online_window_seconds]", "600")
    page.fill(f"{form} [name=session_timeout_seconds]", "900")
    page.click(f"{form} button[type=submit]")
    wait_for_status(page, "Đã tạo trang tin-tuc.")
    site = service.services.sites.get("tin-tuc")
    assert (site.name, site.timezone, str(site.week_start), site.box_metric) == (
        "Tin tức <Lào Cai>",
        "Europe/Berlin",
        "sunday",
        "pageviews",
    )
    assert site.origins == ("https://tintuc.example", "https://www.tintuc.example")
    assert (site.online_window_seconds, site.session_timeout_seconds) == (600, 900)
    assert page.is_hidden("#add-card")
    assert page.text_content("#site-title") == "Tin tức <Lào Cai> (tin-tuc)"  # text, not markup

    # The same id again: the service's 409 is shown next to the id.
    page.click("#add-site")
    page.fill(f"{form} [name=id]", "tin-tuc")
    page.click(f"{form} button[type=submit]")
    wait_until(page, lambda: field_error(page, "add-form", "id") is not None, "the id's error")
    assert field_error(page, "add-form", "id") == "site 'tin-tuc' exists already (HTTP 409)"
    assert page.get_attribute(f"{form} [name=id]", "aria-invalid") == "true"
    page.click("#add-cancel")

    # An origin the service refuses: its message next to the origins, nothing saved.
    edit = "#edit-form"
    assert page.input_value(f"{edit} [name=timezone]") == "Europe/Berlin"
    page.fill(f"{edit} [name=origins]", "https://tintuc.example\nnot-an-origin")
    page.click(f"{edit} button[type=submit]")
    wait_until(page, lambda: field_error(page, "edit-form", "origins") is not None, "an error")
    assert "'origins' holds 'not-an-origin'" in (field_error(page, "edit-form", "origins") or "")
    assert field_error(page, "edit-form", "online_window_seconds") is None
    assert service.services.sites.get("tin-tuc") == site
    # Then the out-of-range window, once the origins are right.
    page.fill(f"{edit} [name=origins]", "https://tintuc.example")
    page.fill(f"{edit} [name=online_window_seconds]", "5")
    page.click(f"{edit} button[type=submit]")
    wait_until(
        page,
        lambda: field_error(page, "edit-form", "online_window_seconds") is not None,
        "the window's error",
    )
    assert field_error(page, "edit-form", "origins") is None
    page.fill(f"{edit} [name=online_window_seconds]", "120")
    page.fill(f"{edit} [name=name]", "Tin tức")
    page.click(f"{edit} button[type=submit]")
    wait_for_status(page, "Đã lưu cài đặt của tin-tuc.")
    site = service.services.sites.get("tin-tuc")
    assert (site.name, site.origins, site.online_window_seconds) == (
        "Tin tức",
        ("https://tintuc.example",),
        120,
    )

    # Deleting asks for the id: a wrong one is refused by the service, next to the field.
    page.fill("#delete-confirm", "tin-tu")
    page.click("#delete-form button[type=submit]")
    wait_until(
        page,
        lambda: field_error(page, "delete-form", "confirm") is not None,
        f"the refusal, not {page.text_content('#status')}",
    )
    assert "?confirm=tin-tuc" in (field_error(page, "delete-form", "confirm") or "")
    assert service.services.sites.get("tin-tuc") == site
    page.fill("#delete-confirm", "tin-tuc")
    page.click("#delete-form button[type=submit]")
    wait_for_status(page, "Đã xoá trang tin-tuc.")
    assert [s.id for s in service.services.admin.list_sites()] == ["demo"]
    rows = "() => [...document.querySelectorAll('#sites tbody tr')].map(r => r.dataset.site)"
    assert page.evaluate(rows) == ["demo"]
    assert page.text_content("#site-title") == "Demo (demo)"

    # The audit log, newest first, in local time (the browser's: Asia/Ho_Chi_Minh here).
    entries = [e.to_json() for e in service.services.admin.audit()]
    wait_until(page, lambda: len(audit_rows(page)) == len(entries), "the audit log")
    rows_shown = audit_rows(page)
    assert (
        [r["action"] for r in rows_shown]
        == [e["action"] for e in entries]
        == [
            "site_deleted",
            "site_updated",
            "site_created",
        ]
    )
    local = service.clock().astimezone(HCM)
    assert rows_shown[0]["cells"][:4] == [
        local.strftime("%H:%M:%S %d/%m/%Y"),
        "Xoá trang",
        "tin-tuc",
        entries[0]["ip"],
    ]
    assert rows_shown[0]["datetime"] == entries[0]["time"]
    assert rows_shown[1]["cells"][4].split("\n") == [
        "name: Tin tức <Lào Cai> → Tin tức",
        "origins: https://tintuc.example, https://www.tintuc.example → https://tintuc.example",
        "online_window_seconds: 600 → 120",
    ]
    in_english(page)
    wait_until(page, lambda: audit_rows(page)[0]["cells"][1] == "Site deleted", "English")
    assert audit_rows(page)[0]["cells"][0] == local.strftime("%d/%m/%Y, %H:%M:%S")
    assert browsing.errors == []


def test_the_embed_snippets_name_the_service_copy_and_work(
    service: Service, browsing: Browsing, host: HostPages
) -> None:
    page = signed_in(browsing, service, permissions=["clipboard-read", "clipboard-write"])
    snippets: dict[str, str] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.snippet')].map(
          f => [f.dataset.snippet, f.querySelector('code').textContent]))"""
    )
    script = f'<script async src="{service.url}/widget.js" data-site="demo"></script>'
    assert snippets["script"] == script
    assert 'data-analytics-value="today.visits"' in snippets["values"]
    assert 'data-analytics-value="page.pageviews"' in snippets["values"]
    assert snippets["values"].endswith(
        f'<script async src="{service.url}/widget.js" data-site="demo" data-box="false"></script>'
    )
    assert snippets["iframe"].startswith(f'<iframe src="{service.url}/widget/demo?lang=vi" ')
    assert snippets["badge"] == (
        f'<img src="{service.url}/badge/demo.svg" alt="{LABELS["vi"]["title"]}">'
    )
    page.click(".snippet[data-snippet='script'] .copy")
    wait_for_status(page, "Đã chép mã nhúng")
    assert page.evaluate("() => navigator.clipboard.readText()") == script
    # What was copied, pasted into a page of another site, shows the box.
    reader = browsing.open(host.add("/bai-viet", f"<p>Xin chào</p>{script}"))
    wait_until(reader, lambda: len(boxes(reader)) == 1, "the box of the pasted snippet")
    assert boxes(reader)[0]["title"] == LABELS["vi"]["title"]
    assert browsing.errors == []


def test_the_history_downloads_as_the_cli_writes_it_in_requests_of_366_days(
    service: Service, browsing: Browsing, settings: Settings, tmp_path: Path
) -> None:
    seed_history(service, days_back=40)
    page = signed_in(browsing, service, accept_downloads=True)
    wait_for_table(page, service, "vi")
    first, last = TODAY - timedelta(days=35), TODAY - timedelta(days=2)
    page.fill("#csv-form [name=from]", str(first))
    page.fill("#csv-form [name=to]", str(last))
    with page.expect_download() as waiting:
        page.click("#csv-form button[type=submit]")
    download = waiting.value
    assert download.suggested_filename == f"demo-{first}-{last}.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    written = run_cli(settings, "history", "demo", "--from", str(first), "--to", str(last))
    assert written.returncode == 0, written.stderr
    assert saved.read_text("utf-8") == written.stdout
    assert written.stdout.startswith("date,pageviews,visits,visitors\n")
    assert any(line.split(",")[1] != "0" for line in written.stdout.splitlines()[1:])

    # Longer than one request may ask: split, each request at most 366 days, none missing.
    start = TODAY - timedelta(days=399)
    page.fill("#csv-form [name=from]", str(start))
    page.fill("#csv-form [name=to]", str(TODAY))
    browsing.requests.clear()
    with page.expect_download() as waiting:
        page.click("#csv-form button[type=submit]")
    text = Path(waiting.value.path()).read_text("utf-8")
    asked = [
        parse_qs(urlsplit(r.url).query)
        for r in browsing.requests
        if urlsplit(r.url).path == "/api/v1/sites/demo/history"
    ]
    spans = [(q["from"][0], q["to"][0]) for q in asked]
    assert spans == [
        (str(start), str(start + timedelta(days=365))),
        (str(start + timedelta(days=366)), str(TODAY)),
    ]
    days = history(service, start, start + timedelta(days=365)) + history(
        service, start + timedelta(days=366), TODAY
    )
    expected = ["date,pageviews,visits,visitors"] + [
        f"{d['date']},{d['pageviews']},{d['visits']},{d['visitors']}" for d in days
    ]
    assert text == "\n".join(expected) + "\n"
    assert len(expected) == 401
    wait_for_status(page, "Đã tải 400 ngày của demo")
    assert browsing.errors == []


def post_hit(service: Service, url: str, referrer: str, ip: str) -> None:
    response = service.app.test_client().post(
        "/api/v1/hit",
        data=json.dumps({"site": "demo", "url": url, "referrer": referrer}),
        content_type="text/plain;charset=UTF-8",
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 204


def listed(page: Page, table: str) -> list[list[str]]:
    found: list[list[str]] = page.evaluate(
        f"""() => [...document.querySelectorAll('#{table} tbody tr')]
          .filter(r => !r.querySelector('.empty'))
          .map(r => [...r.cells].map(c => c.textContent))"""
    )
    return found


def test_top_pages_and_referrers_of_each_window(service: Service, browsing: Browsing) -> None:
    client = service.app.test_client()
    if client.get("/api/v1/sites/demo/pages").status_code == 404:
        pytest.fail("GET /api/v1/sites/{site}/pages is not served")
    for n in range(1200):
        post_hit(
            service,
            f"https://example.vn/tin-tuc/{n % 3}?x={n}",
            "https://google.com/",
            f"10.0.{n // 250}.{n % 250}",
        )
    post_hit(service, "https://example.vn/<b>", "https://facebook.com/x", "10.9.0.1")
    page = signed_in(browsing, service)
    for window in ("today", "total", "yesterday"):
        page.select_option("#traffic-window", window)
        pages = client.get(f"/api/v1/sites/demo/pages?window={window}&limit=10").get_json()
        refs = client.get(f"/api/v1/sites/demo/referrers?window={window}&limit=10").get_json()
        want_pages = [[p["path"], format_count(p["pageviews"], "vi")] for p in pages["pages"]]
        want_refs = [[r["host"], format_count(r["pageviews"], "vi")] for r in refs["referrers"]]
        expected = (window, want_pages, want_refs)

        def shown(expected: tuple[str, Any, Any] = expected) -> bool:
            return (
                page.get_attribute("#pages", "data-window"),
                listed(page, "pages"),
                listed(page, "referrers"),
            ) == expected

        wait_until(page, shown, f"the lists of {window}")
        if window != "yesterday":
            assert listed(page, "pages")[0] == ["/tin-tuc/0", "400"]
            assert ["/<b>", "1"] in listed(page, "pages")  # text, never markup
    assert browsing.errors == [] and browsing.console_errors == []


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_page_fits_a_desktop_and_a_phone_in_both_languages(
    service: Service, browsing: Browsing, lang: str
) -> None:
    service.services.sites.upsert(
        {
            "id": "so-van-hoa-the-thao-va-du-lich-tinh-lao-cai-cong-thong-tin",
            "name": "Cổng thông tin điện tử Sở Văn hoá, Thể thao và Du lịch tỉnh Lào Cai",
            "origins": ["https://sovhttdl.laocai.gov.vn"],
        }
    )
    service.seed_offsets(1_532_907_123)
    seed_history(service, days_back=10)
    ARTIFACTS.mkdir(exist_ok=True)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = signed_in(
            browsing,
            service,
            english=lang == "en",
            viewport=viewport,
            is_mobile=name == "phone",
        )
        doc = wait_for_table(page, service, lang)
        labels = LABELS[lang]
        total = page.text_content(
            "#sites tr[data-site='demo'] td[data-window='total'][data-metric='pageviews']"
        )
        assert total == format_count(doc["windows"]["total"]["pageviews"], lang)
        assert total.startswith("1.532.9" if lang == "vi" else "1,532,9")
        headers = page.evaluate(
            "() => [...document.querySelectorAll('#sites thead th[colspan]')]"
            ".map(t => t.textContent)"
        )
        assert headers == [labels[w] for w in ("today", "this_week", "this_month", "total")]
        options = page.evaluate(
            "() => [...document.querySelectorAll('#traffic-window option')].map(o => o.textContent)"
        )
        assert options == [
            labels[w]
            for w in (
                "today",
                "yesterday",
                "this_week",
                "last_week",
                "this_month",
                "last_month",
                "total",
            )
        ]
        wait_until(page, lambda: len(audit_rows(page)) >= 1, "the audit log")  # noqa: B023
        page.evaluate("() => document.fonts.ready")
        found = page.evaluate(OVERFLOW)
        assert found["document"][0] <= found["document"][1], (name, found)
        assert found["cards"] == [] and found["scrolled"] == [], (name, found)
        assert found["cells"] == [], (name, found)
        # The Total column is in view at 1280 px, not behind a scroll.
        box = page.locator(
            "#sites tr[data-site='demo'] td[data-window='total'][data-metric='visitors']"
        ).bounding_box()
        card = page.locator("#sites-card").bounding_box()
        assert box is not None and card is not None
        assert box["x"] + box["width"] <= card["x"] + card["width"]
        page.screenshot(path=ARTIFACTS / f"admin-{lang}-{name}.png", full_page=True)
    assert browsing.errors == []
