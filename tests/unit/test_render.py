import re
from xml.etree import ElementTree

import pytest

from analytics.errors import InvalidInput
from analytics.periods import WINDOWS
from analytics.reading import Counters, Window
from analytics.render import (
    LABELS,
    ROWS,
    BoxOptions,
    badge_for,
    badge_svg,
    box_options,
    box_page,
    format_count,
    text_width,
)
from analytics.sites import METRICS


def document(box_metric: str = "visits") -> Counters:
    """A counters document whose every number says which window and metric it is."""
    windows = {
        name: Window(None, *(1_000_000 * (i + 1) + 1000 * j for j in range(len(METRICS))))
        for i, name in enumerate(WINDOWS)
    }
    return Counters("demo", "Asia/Ho_Chi_Minh", "", box_metric, online=12, windows=windows)


@pytest.mark.parametrize(
    ("value", "vi", "en"),
    [
        (0, "0", "0"),
        (999, "999", "999"),
        (1204, "1.204", "1,204"),
        (1_532_907, "1.532.907", "1,532,907"),
        (10**15, "1.000.000.000.000.000", "1,000,000,000,000,000"),
    ],
)
def test_number_formats(value: int, vi: str, en: str) -> None:
    assert format_count(value, "vi") == vi
    assert format_count(value, "en") == en


def test_the_default_box_is_the_portal_box() -> None:
    page = box_page(document(), BoxOptions())
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Thống kê truy cập" in text
    rows = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page)
    assert rows == [
        ("Đang online", "12"),
        ("Hôm nay", "1.001.000"),  # today's visits
        ("Trong tuần", "3.001.000"),
        ("Tất cả", "7.001.000"),
    ]
    assert 'role="region"' in page and 'aria-label="Thống kê truy cập"' in page
    assert "<script" not in page


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_window_and_metric(metric: str, lang: str) -> None:
    page = box_page(document(), BoxOptions(lang=lang, rows=ROWS, metric=metric))
    rows = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", page)
    assert [label for label, _ in rows] == [LABELS[lang][r] for r in ROWS]
    j = METRICS.index(metric)
    for i, (_, shown) in enumerate(rows[1:]):
        assert shown == format_count(1_000_000 * (i + 1) + 1000 * j, lang)


def test_the_site_box_metric_is_the_default() -> None:
    page = box_page(document("pageviews"), BoxOptions(rows=("total",)))
    assert "<dd>7.000.000</dd>" in page


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"lang": "fr"}, "lang"),
        ({"theme": "neon"}, "theme"),
        ({"rows": "today,forever"}, "rows"),
        ({"rows": ","}, "rows"),
        ({"metric": "likes"}, "metric"),
    ],
)
def test_bad_box_options_name_the_parameter(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        box_options(args)
    assert caught.value.field == field


def test_box_options() -> None:
    options = box_options({"lang": "en", "theme": "dark", "rows": "online, yesterday"})
    assert options == BoxOptions("en", "dark", ("online", "yesterday"), None)


HOSTILE_LABELS = [
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "</text></g><script>alert(1)</script>",
    "a & b < c > d ' e \"",
    "<![CDATA[x]]>",
    "&lt;already&gt;",
    "Lượt truy cập\x00\x1b",
]


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_labels_are_escaped(label: str) -> None:
    svg = badge_for(document(), {"label": label})
    root = ElementTree.fromstring(svg)  # still well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f".//{ns}script") is None
    assert all(not k.startswith("on") for el in root.iter() for k in el.attrib)
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert texts[0] == "".join(c for c in label if c >= " ")


def test_badge_values_windows_and_colors() -> None:
    ns = "{http://www.w3.org/2000/svg}"
    svg = badge_for(document(), {"window": "today", "metric": "pageviews", "color": "#e05d44"})
    root = ElementTree.fromstring(svg)
    assert [t.text for t in root.iter(f"{ns}text")] == ["lượt xem", "1.000.000"]
    assert 'fill="#e05d44"' in svg
    online = ElementTree.fromstring(badge_for(document(), {"window": "online", "lang": "en"}))
    assert [t.text for t in online.iter(f"{ns}text")] == ["Online now", "12"]
    for bad in ({"color": "url(#x)"}, {"window": "forever"}, {"metric": "x"}, {"label": "x" * 65}):
        with pytest.raises(InvalidInput):
            badge_for(document(), bad)


def test_badge_width_grows_with_the_text() -> None:
    def width(label: str, value: str) -> int:
        return int(ElementTree.fromstring(badge_svg(label, value, "#007ec6")).attrib["width"])

    assert width("visits", "1.532.907.000") > width("visits", "12")
    # Vietnamese letters are as wide as their base letters, not zero and not double.
    assert text_width("lượt truy cập") == pytest.approx(text_width("luot truy cap"))
    assert width("Lượt truy cập hôm nay của Cổng thông tin", "9") > 200
