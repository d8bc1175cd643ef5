"""The admin page in Chromium, against the real service with an admin token, on a fixed clock."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Dialog, Page

from analytics.render import format_count
from analytics.sites import MAX_COUNT
from tests.browser.helpers import ARTIFACTS, NEEDS_CHROMIUM, Browsing, Service, wait_until
from tests.helpers import EXAMPLE_INSTANT, hit

pytestmark = NEEDS_CHROMIUM

TOKEN = "browser-test-admin-token-0123456789"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
TODAY = EXAMPLE_INSTANT.astimezone(HCM).date()
WINDOWS = ["today", "this_week", "this_month", "total"]
METRICS = ["pageviews", "visits", "visitors"]
UNAUTHORIZED = "a valid admin bearer token is required"

TABLE = """site => {
  const row = document.querySelector(`#sites tr[data-site="${site}"]`);
  if (!row) return null;
  return Object.fromEntries([...row.querySelectorAll('td')].map(
    td => [td.dataset.metric ? `${td.dataset.window}.${td.dataset.metric}` : td.dataset.window,
           td.textContent]));
}"""

CHART = """() => {
  const svg = document.querySelector('#chart svg');
  if (!svg) return null;
  return {
    role: svg.getAttribute('role'),
    label: svg.getAttribute('aria-label'),
    title: svg.querySelector('title') && svg.querySelector('title').textContent,
    from: svg.dataset.from,
    to: svg.dataset.to,
    baseline: Number(svg.querySelector('line.baseline').getAttribute('y1')),
    lines: Object.fromEntries([...svg.querySelectorAll('polyline')].map(p => [
      p.dataset.metric,
      p.getAttribute('points').trim().split(/\\s+/).map(xy => xy.split(',').map(Number)),
    ])),
    box: svg.getBoundingClientRect().toJSON(),
    labels: [...svg.querySelectorAll('text')].map(t => t.getBoundingClientRect().toJSON()),
  };
}"""


@pytest.fixture
def service_settings(settings: Any) -> Any:
    """The browser tests' service, with the admin API on."""
    return settings.replace(admin_token=TOKEN)


def seed_history(service: Service, days_back: int = 100) -> None:
    """Readers on each of the last ``days_back`` days and today, through the real beacon.

    A day has 0 to 4 readers reading 1 to 3 pages each, and the first of them comes back
    hours later (a second visit); the clock then returns to the example instant and
    housekeeping freezes the closed days, as the scheduler would have done.
    """
    client = service.app.test_client()
    now = service.clock()
    for back in range(days_back, -1, -1):
        day = TODAY - timedelta(days=back)
        readers = 3 if back == 0 else (back * 7) % 5
        service.clock.set(datetime.combine(day, time(8), HCM))
        for reader in range(readers):
            for page in range(1 + (back + reader) % 3):
                url = f"https://example.vn/{day}/{reader}/{page}"
                assert hit(client, url=url, ip=f"203.0.113.{10 + reader}") == 204
                service.clock.advance(61)
        if readers:
            service.clock.advance(hours=3)
            assert hit(client, url=f"https://example.vn/{day}/back", ip="203.0.113.10") == 204
    service.clock.set(now)
    # One reader is on the site now, so that "online" is not 0.
    assert hit(client, url="https://example.vn/now", ip="198.51.100.7") == 204
    service.services.housekeeper.run_all()


def history(service: Service, first: date, last: date) -> list[dict[str, Any]]:
    response = service.app.test_client().get(
        "/api/v1/sites/demo/history", query_string={"from": str(first), "to": str(last)}
    )
    assert response.status_code == 200
    days: list[dict[str, Any]] = response.get_json()["days"]
    return days


def shown_counters(doc: dict[str, Any], lang: str = "en") -> dict[str, str]:
    """What the sites table must show for a counters document: the box's number format."""
    shown = {"online": format_count(doc["online"], lang)}
    for window in WINDOWS:
        for metric in METRICS:
            shown[f"{window}.{metric}"] = format_count(doc["windows"][window][metric], lang)
    return shown


def wait_for_table(page: Page, service: Service, lang: str = "en") -> dict[str, Any]:
    """Waits until the row of demo shows the counters the API answers now; returns them."""
    doc = service.counters()
    expected = shown_counters(doc, lang)
    seen: list[Any] = [None]

    def shown() -> bool:
        seen[0] = page.evaluate(TABLE, "demo")
        return bool(seen[0] == expected)

    try:
        wait_until(page, shown, "the counters of demo in the table")
    except AssertionError:
        raise AssertionError(f"the table shows {seen[0]}, not {expected}") from None
    return doc


def wait_for_chart(page: Page, days: int) -> dict[str, Any]:
    chart: dict[str, Any] = {}

    def drawn() -> bool:
        nonlocal chart
        chart = page.evaluate(CHART) or {}
        lines = chart.get("lines", {})
        return sorted(lines) == sorted(METRICS) and all(len(p) == days for p in lines.values())

    wait_until(page, drawn, f"a chart of {days} days")
    return chart


def check_chart_draws(chart: dict[str, Any], days: list[dict[str, Any]]) -> None:
    """The three lines are the API's history: oldest day left, heights in proportion."""
    assert chart["role"] == "img"
    assert chart["title"] == chart["label"]
    assert f"over the last {len(days)} days" in chart["label"]
    assert (chart["from"], chart["to"]) == (days[0]["date"], days[-1]["date"])
    peak = max(day[m] for day in days for m in METRICS)
    baseline = chart["baseline"]
    peak_point = max(
        (baseline - y, day[m])
        for m in METRICS
        for (_, y), day in zip(chart["lines"][m], days, strict=True)
    )
    assert peak_point[1] == peak
    scale = peak_point[0] / peak
    for metric in METRICS:
        points = chart["lines"][metric]
        xs = [x for x, _ in points]
        assert xs == sorted(xs) and len(set(xs)) == len(xs)
        heights = [round(baseline - y, 1) for _, y in points]
        expected = [round(day[metric] * scale, 1) for day in days]
        assert heights == pytest.approx(expected, abs=0.25), metric


def wait_for_history(page: Page, service: Service, days: int) -> dict[str, Any]:
    """Waits until the chart draws the history the API answers now for the last ``days``."""
    expected = history(service, TODAY - timedelta(days=days - 1), TODAY)
    chart: dict[str, Any] = {}
    problem = ""

    def drawn() -> bool:
        nonlocal chart, problem
        chart = wait_for_chart(page, days)
        try:
            check_chart_draws(chart, expected)
        except AssertionError as err:
            problem = str(err)
            return False
        return True

    try:
        wait_until(page, drawn, f"the chart to draw the history of {days} days")
    except AssertionError:
        raise AssertionError(f"the chart does not draw the history: {problem}") from None
    return chart


def overlapping(boxes: list[dict[str, float]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes[i + 1 :], i + 1)
        if a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    ]


def in_english(page: Page) -> None:
    """Switches the page to English (it opens in Vietnamese), as a user does."""
    page.select_option("#lang", "en")
    wait_until(page, lambda: page.text_content("#login-title") == "Sign in", "English")


def sign_in(page: Page, token: str = TOKEN) -> None:
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def status(page: Page) -> tuple[str, str]:
    return page.text_content("#status") or "", page.get_attribute("#status", "class") or ""


def wait_for_status(page: Page, text: str) -> tuple[str, str]:
    wait_until(page, lambda: text in status(page)[0], f"the status line to say {text!r}")
    return status(page)


def test_sign_in_see_the_counters_and_the_chart_reset_today_and_undo(
    service: Service, browsing: Browsing
) -> None:
    seed_history(service)
    page = browsing.open(viewport={"width": 1280, "height": 900})
    response = page.goto(f"{service.url}/admin")
    assert response is not None and response.status == 200
    assert page.is_visible("#login") and page.is_hidden("#app")
    in_english(page)
    sign_in(page)
    wait_for_status(page, "Signed in: 1 site.")
    assert page.is_hidden("#login") and page.is_visible("#app")
    # The token is in the script's memory alone; the one thing stored is the language.
    assert page.input_value("#token") == ""
    stored = "() => [{...localStorage}, sessionStorage.length, document.cookie]"
    assert page.evaluate(stored) == [{"analytics-admin-lang": "en"}, 0, ""]

    before = wait_for_table(page, service)
    assert before["online"] == 1 and before["windows"]["today"]["pageviews"] > 0
    chart = wait_for_history(page, service, 30)
    assert overlapping(chart["labels"]) == []
    assert page.get_attribute(".range button[data-days='30']", "aria-pressed") == "true"

    page.click(".range button[data-days='90']")
    chart = wait_for_history(page, service, 90)
    assert overlapping(chart["labels"]) == []
    assert page.get_attribute(".range button[data-days='90']", "aria-pressed") == "true"
    assert page.get_attribute(".range button[data-days='30']", "aria-pressed") == "false"

    # A dismissed confirmation resets nothing.
    page.check("#reset-form input[value='today']")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#reset-form button[type=submit]")
    wait_for_status(page, "Reset cancelled.")
    assert service.counters() == before

    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click("#reset-form button[type=submit]")
    text, kind = wait_for_status(page, "emptied")
    assert page.is_visible("#reset-done")
    assert questions and questions[0].startswith("Reset today of demo?")
    assert kind == "status ok"
    reset_id = page.text_content("#reset-id") or ""
    assert re.fullmatch(r"[0-9a-f]{16}", reset_id)
    assert text == f"Reset {reset_id}: today of demo emptied."
    assert page.is_visible("#undo")
    assert not page.is_checked("#reset-form input[value='today']")
    after = wait_for_table(page, service)
    assert after["windows"]["today"] == {
        "start": str(TODAY),
        "pageviews": 0,
        "visits": 0,
        "visitors": 0,
    }
    for window in ("this_week", "this_month", "total"):
        assert after["windows"][window] == before["windows"][window]
    # Today's points of the chart fell to the axis.
    chart = wait_for_history(page, service, 90)
    assert [line[-1][1] for line in chart["lines"].values()] == [chart["baseline"]] * 3

    page.click("#undo")
    wait_for_status(page, f"Reset {reset_id} undone: today of demo restored.")
    restored = wait_for_table(page, service)
    assert restored == before
    assert page.is_hidden("#reset-done")
    wait_for_history(page, service, 90)
    actions = [(e.action, (e.change or {}).get("reset_id")) for e in service.services.admin.audit()]
    assert actions[:2] == [("reset_undone", reset_id), ("reset", reset_id)]

    ARTIFACTS.mkdir(exist_ok=True)
    page.click(".range button[data-days='30']")
    wait_for_chart(page, 30)
    page.screenshot(path=ARTIFACTS / "admin.png", full_page=True)

    # Everything came from the service itself; nothing was refused by the CSP or failed.
    origin = urlsplit(service.url).netloc
    assert {urlsplit(r.url).netloc for r in browsing.requests if r.url != "data:,"} == {origin}
    assert browsing.errors == []
    assert browsing.console_errors == []
    # A reload forgets the token.
    page.reload()
    assert page.is_visible("#login") and page.is_hidden("#app")
    # ... and remembers the language.
    wait_until(page, lambda: page.text_content("#login-title") == "Sign in", "English kept")
    assert page.evaluate("() => document.documentElement.lang") == "en"


def test_a_wrong_token_shows_the_error_and_stays_on_the_prompt(
    service: Service, browsing: Browsing
) -> None:
    page = browsing.open(f"{service.url}/admin")
    in_english(page)
    sign_in(page, "not-the-admin-token-at-all")
    text, kind = wait_for_status(page, UNAUTHORIZED)
    assert text == f"Not signed in: {UNAUTHORIZED} (HTTP 401)."
    assert kind == "status error"
    assert page.is_visible("#login") and page.is_hidden("#app")
    assert page.evaluate("() => document.activeElement.id") == "token"
    audit = service.services.admin.audit()
    assert [(e.action, (e.change or {})["reason"]) for e in audit] == [
        ("auth_failed", "wrong token")
    ]

    sign_in(page)
    wait_for_status(page, "Signed in")
    assert page.is_visible("#app")
    # A 401 later on (the token was changed on the server) returns to the prompt.
    page.route(
        f"{service.url}/api/v1/admin/sites",
        lambda route: route.fulfill(
            status=401,
            json={"error": {"code": "unauthorized", "message": UNAUTHORIZED}},
            headers={"WWW-Authenticate": "Bearer"},
        ),
    )
    page.click("#refresh")
    wait_for_status(page, UNAUTHORIZED)
    assert page.is_visible("#login") and page.is_hidden("#app")
    assert page.evaluate("() => document.querySelectorAll('#sites tbody tr').length") == 0
    assert browsing.errors == []
    assert all("status of 401" in e for e in browsing.console_errors), browsing.console_errors


def test_offsets_are_saved_and_an_api_error_is_shown(service: Service, browsing: Browsing) -> None:
    page = browsing.open(f"{service.url}/admin")
    in_english(page)
    sign_in(page)
    wait_for_table(page, service)
    assert [page.input_value(f"#offset-{m}") for m in METRICS] == ["0", "0", "0"]
    for metric, value in zip(METRICS, ["1532906", "345678", "9000"], strict=True):
        page.fill(f"#offset-{metric}", value)
    page.click("#offsets-form button[type=submit]")
    wait_for_status(page, "Offsets of demo saved: 1,532,906 pageviews, 345,678 visits")
    doc = wait_for_table(page, service)
    assert {m: doc["windows"]["total"][m] for m in METRICS} == {
        "pageviews": 1_532_906,
        "visits": 345_678,
        "visitors": 9000,
    }
    # Over the service's limit: its message is shown, and the admin stays signed in.
    page.fill("#offset-visits", str(MAX_COUNT + 1))
    page.click("#offsets-form button[type=submit]")
    text, kind = wait_for_status(page, "must be a whole number")
    assert kind == "status error" and "offsets.visits" in text and "(HTTP 400)" in text
    assert page.is_visible("#app")
    assert service.services.sites.get("demo").offsets.visits == 345_678
    assert browsing.errors == []


def test_every_site_is_listed_and_the_one_picked_is_shown(
    service: Service, browsing: Browsing
) -> None:
    service.services.sites.upsert(
        {"id": "laocai", "name": "Cổng thông tin <Lào Cai>", "timezone": "Europe/Berlin"}
    )
    service.services.sites.upsert({"id": "laocai", "offsets": {"pageviews": 7}})
    page = browsing.open(f"{service.url}/admin")
    in_english(page)
    sign_in(page)
    wait_for_status(page, "Signed in: 2 sites.")
    rows = "() => [...document.querySelectorAll('#sites tbody tr')].map(r => r.dataset.site)"
    assert sorted(page.evaluate(rows)) == ["demo", "laocai"]
    assert page.evaluate(TABLE, "laocai")["total.pageviews"] == "7"
    about = page.text_content("#sites tr[data-site='laocai'] .about")
    assert about == "Cổng thông tin <Lào Cai> · Europe/Berlin"  # text, never markup
    first = page.text_content("#site-title")
    other = "laocai" if first == "demo" else "demo"
    page.click(f"#sites tr[data-site='{other}'] button.site")
    wait_until(page, lambda: other in (page.text_content("#site-title") or ""), "the other site")
    assert page.get_attribute(f"#sites tr[data-site='{other}'] button.site", "aria-pressed") == (
        "true"
    )
    chart = wait_for_chart(page, 30)
    assert f" of {other} " in chart["label"]
    offsets = {"laocai": "7", "demo": "0"}[other]
    assert page.input_value("#offset-pageviews") == offsets
    assert browsing.errors == [] and browsing.console_errors == []
