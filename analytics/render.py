"""What people see: the box as HTML, the SVG badge, and numbers written for the language."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib import resources

from analytics.errors import InvalidInput
from analytics.periods import WINDOWS
from analytics.reading import Counters
from analytics.sites import METRICS

LANGS = ("vi", "en")
THEMES = ("light", "dark", "auto")
ROWS = ("online", *WINDOWS)
DEFAULT_ROWS = ("online", "today", "this_week", "total")
PAGE_ROW = "page"
"""A row of the embed script's box alone: the page it is on, its views in every window."""

# The only copy: the build of the embed script writes the box's rows and labels into it
# (analytics/widget_build.py), so a change here needs `python -m analytics.widget_build`.
LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Thống kê truy cập",
        "online": "Đang online",
        "today": "Hôm nay",
        "yesterday": "Hôm qua",
        "this_week": "Trong tuần",
        "last_week": "Tuần trước",
        "this_month": "Trong tháng",
        "last_month": "Tháng trước",
        "total": "Tất cả",
        "page": "Lượt xem trang này",
        "pageviews": "lượt xem",
        "visits": "lượt truy cập",
        "visitors": "người xem",
    },
    "en": {
        "title": "Visitor statistics",
        "online": "Online now",
        "today": "Today",
        "yesterday": "Yesterday",
        "this_week": "This week",
        "last_week": "Last week",
        "this_month": "This month",
        "last_month": "Last month",
        "total": "Total",
        "page": "Views of this page",
        "pageviews": "page views",
        "visits": "visits",
        "visitors": "visitors",
    },
}


def format_count(value: int, lang: str) -> str:
    """``1.532.907`` in Vietnamese, ``1,532,907`` in English."""
    grouped = f"{value:,}"
    return grouped.replace(",", ".") if lang == "vi" else grouped


@dataclass(frozen=True)
class BoxOptions:
    lang: str = "vi"
    theme: str = "light"
    rows: tuple[str, ...] = DEFAULT_ROWS
    metric: str | None = None  # None: the site's box_metric


def _choice(args: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    value = args.get(name) or default
    if value not in allowed:
        raise InvalidInput(f"'{name}' must be one of {', '.join(allowed)}", field=name)
    return value


def box_options(args: Mapping[str, str]) -> BoxOptions:
    """The box's options from query parameters; InvalidInput naming a bad one."""
    rows_text = args.get("rows") or ",".join(DEFAULT_ROWS)
    rows = tuple(r.strip() for r in rows_text.split(",") if r.strip())
    if not rows or len(rows) > len(ROWS) or any(r not in ROWS for r in rows):
        raise InvalidInput(f"'rows' must be a comma list of {', '.join(ROWS)}", field="rows")
    metric = args.get("metric") or None
    if metric is not None and metric not in METRICS:
        raise InvalidInput(f"'metric' must be one of {', '.join(METRICS)}", field="metric")
    return BoxOptions(
        lang=_choice(args, "lang", LANGS, "vi"),
        theme=_choice(args, "theme", THEMES, "light"),
        rows=rows,
        metric=metric,
    )


@cache
def box_css() -> str:
    return resources.files("analytics").joinpath("static", "box.css").read_text("utf-8")


def box_page(doc: Counters, options: BoxOptions) -> str:
    """The box as a self-contained HTML page, for an iframe: no script, styles inline."""
    labels = LABELS[options.lang]
    metric = options.metric or doc.box_metric
    rows = "".join(
        f'<div class="row"><dt>{escape(labels[row])}</dt>'
        f"<dd>{format_count(doc.value(row, metric), options.lang)}</dd></div>"
        for row in options.rows
    )
    title = escape(labels["title"])
    return (
        f'<!doctype html><html lang="{options.lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{box_css()}</style></head><body>"
        f'<section class="box {options.theme}" role="region" aria-label="{title}">'
        f"<h2>{title}</h2><dl>{rows}</dl></section></body></html>"
    )


# -- the badge ---------------------------------------------------------------------

BADGE_COLORS = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellowgreen": "#a4a61d",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
    "grey": "#555",
}
HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
MAX_LABEL = 64

# Advance widths of Verdana at 11 px (the shields look), in px; other letters are mapped to
# their base letter, anything else counts as a wide glyph.
_NARROW = {c: 3.9 for c in " .,:;!|'ilI"} | {c: 4.6 for c in "fjrt()[]/-"}
_WIDE = {c: 9.9 for c in "mwMW@%"}


def _char_width(c: str) -> float:
    base = unicodedata.normalize("NFD", c)[0]
    if base in _NARROW:
        return _NARROW[base]
    if base in _WIDE:
        return _WIDE[base]
    if base.isdigit() or base.islower():
        return 7.0
    if base.isupper():
        return 7.6
    return 11.0


def text_width(text: str) -> float:
    return sum(_char_width(c) for c in text)


def badge_color(value: str | None) -> str:
    if not value:
        return BADGE_COLORS["blue"]
    if value in BADGE_COLORS:
        return BADGE_COLORS[value]
    if HEX_COLOR.fullmatch(value):
        return "#" + value.lstrip("#")
    raise InvalidInput(
        f"'color' must be #rgb, #rrggbb or one of {', '.join(BADGE_COLORS)}", field="color"
    )


def badge_svg(label: str, value: str, color: str) -> str:
    """A flat shields-style badge; every text is escaped, widths follow the text."""
    left = round(text_width(label) + 12)
    right = round(text_width(value) + 12)
    width = left + right
    safe_label, safe_value = escape(label), escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{safe_label}: {safe_value}"><title>{safe_label}: {safe_value}</title>'
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{color}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        f'font-size="11"><text x="{left / 2:.1f}" y="14">{safe_label}</text>'
        f'<text x="{left + right / 2:.1f}" y="14">{safe_value}</text></g></svg>'
    )


def badge_for(doc: Counters, args: Mapping[str, str]) -> str:
    """The badge of a counters document for the query parameters of /badge/<site>.svg."""
    window = _choice(args, "window", ROWS, "total")
    metric = _choice(args, "metric", METRICS, doc.box_metric)
    lang = _choice(args, "lang", LANGS, "vi")
    label = args.get("label")
    if label is None:
        label = LABELS[lang]["online" if window == "online" else metric]
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"'label' is longer than {MAX_LABEL} characters", field="label")
    label = "".join(c for c in label if unicodedata.category(c)[0] != "C")
    value = format_count(doc.value(window, metric), lang)
    return badge_svg(label, value, badge_color(args.get("color")))
