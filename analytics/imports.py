"""Imported history: the daily counts of an earlier counter, parsed from an admin request body or
from a CSV file into checked days. Pure: the admin service stores them."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Any

from analytics.errors import InvalidInput

MAX_IMPORT_DAYS = 3660
"""Days one import call takes at most (ten years); the command line sends bigger files in
chunks of this size."""
MAX_DAY_COUNT = 10**12
"""The most one imported day may count of each metric."""
FIRST_DAY = date(1990, 1, 1)
"""The earliest day that can be imported."""
METRICS = ("pageviews", "visits", "visitors")
FIELDS = ("date", *METRICS)
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
NUMBER = re.compile(r"[0-9]{1,13}")


@dataclass(frozen=True)
class ImportedDay:
    day: date
    pageviews: int
    visits: int = 0
    visitors: int = 0


def check_days(days: Sequence[ImportedDay], today: date) -> None:
    """Refuses the first of ``days`` that is not before ``today`` (the site's local day), and
    more than ``MAX_IMPORT_DAYS``; each counts as ``days[i]``."""
    if len(days) > MAX_IMPORT_DAYS:
        raise _too_many()
    for n, day in enumerate(days):
        _check_date(f"days[{n}].date", day.day, today)


def _too_many() -> InvalidInput:
    return InvalidInput(
        f"'days' holds at most {MAX_IMPORT_DAYS} days a call: send more in several", field="days"
    )


def _check_date(name: str, day: date, today: date) -> None:
    if not FIRST_DAY <= day < today:
        raise InvalidInput(
            f"'{name}' must be a day from {FIRST_DAY} to the day before today "
            f"({today} in the site's timezone), not {day}",
            field=name,
        )


def _date(name: str, value: Any, today: date) -> date:
    try:
        if not isinstance(value, str) or not DAY.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"'{name}' must be a date YYYY-MM-DD", field=name) from None
    _check_date(name, day, today)
    return day


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAY_COUNT:
        raise InvalidInput(f"'{name}' must be a whole number from 0 to {MAX_DAY_COUNT}", field=name)
    return value


def parse_days(body: Any, today: date) -> list[ImportedDay]:
    """The days of an import body ``{"days": [{"date", "pageviews", "visits", "visitors"},
    ...]}``, the first bad one named (``days[3].date``): days before ``today`` (the site's),
    at most ``MAX_IMPORT_DAYS``, no date twice, no unknown field."""
    if not isinstance(body, Mapping):
        raise InvalidInput("the body must be a JSON object")
    for key in body:
        if key != "days":
            raise InvalidInput(f"unknown field '{key}'", field=key)
    days = body.get("days")
    if not isinstance(days, list):
        raise InvalidInput("'days' must be a list of days", field="days")
    if len(days) > MAX_IMPORT_DAYS:
        raise _too_many()
    parsed: list[ImportedDay] = []
    seen: dict[date, int] = {}
    for n, raw in enumerate(days):
        where = f"days[{n}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"'{where}' must be an object", field=where)
        for key in raw:
            if key not in FIELDS:
                raise InvalidInput(f"unknown field '{where}.{key}'", field=f"{where}.{key}")
        if "date" not in raw:
            raise InvalidInput(f"'{where}.date' is required", field=f"{where}.date")
        if "pageviews" not in raw:
            raise InvalidInput(f"'{where}.pageviews' is required", field=f"{where}.pageviews")
        day = _date(f"{where}.date", raw["date"], today)
        if day in seen:
            raise InvalidInput(
                f"'{where}.date' repeats {day} (days[{seen[day]}]): each day once a call",
                field=f"{where}.date",
            )
        seen[day] = n
        counts = {m: _count(f"{where}.{m}", raw[m]) for m in METRICS if m in raw}
        parsed.append(ImportedDay(day, **counts))
    return parsed


@dataclass(frozen=True)
class CsvDays:
    days: list[ImportedDay]
    lines: list[int]
    """The line of the file each day comes from."""
    today_line: int | None = None
    """The line of today's day, left out: today is still being counted live (an export of
    ``analytics history`` ends with it)."""


def coarser_interval(days: Iterable[date]) -> str | None:
    """``"month"`` or ``"week"`` when ``days`` are the rows of an export by month or by week
    (one row a period, dated its first day) rather than by day; None otherwise.

    By month: at least two days, every one after the earliest the 1st of a month; by week: at
    least two days, every one after the earliest 7 days after the one before it. The earliest
    may fall later in its period (a range that starts mid-period) when two more follow it."""
    found = sorted(set(days))
    if len(found) < 2:
        return None
    cut_first = len(found) > 2
    if all(d.day == 1 for d in found[1:]) and (found[0].day == 1 or cut_first):
        return "month"
    gaps = [(b - a).days for a, b in pairwise(found)]
    if all(g == 7 for g in gaps[1:]) and (gaps[0] == 7 or (cut_first and gaps[0] < 7)):
        return "week"
    return None


def check_daily(days: Sequence[ImportedDay]) -> None:
    """Refuses days that are an export by month or by week (see ``coarser_interval``): imported,
    each would book a whole month or week on its first day. (The command line's check; its
    ``--allow-gaps`` skips it.)"""
    interval = coarser_interval(d.day for d in days)
    if interval is None:
        return
    what = "a month (dated the 1st)" if interval == "month" else "a week (7 days apart)"
    raise InvalidInput(
        f"the file holds one row {what}, not one a day: export with a daily interval "
        "(in Plausible, a date range of a week to a month, whose chart is by day; a longer "
        "history in several files), or pass --allow-gaps if the file truly holds only "
        "those days",
        field="file",
    )


def days_from_csv(lines: Iterable[str], today: date) -> CsvDays:
    """The days of a CSV file whose header names its columns: ``date``, ``pageviews``, and
    optionally ``visits`` and ``visitors`` (names trimmed, any case; other columns ignored), as
    Plausible's daily export (visitors.csv) and ``analytics history --format csv`` write them.
    A bad row raises InvalidInput naming its line (field ``line N``); blank lines are skipped,
    and so is one line of ``today`` (the last of an export: still counted live)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InvalidInput(
            "the file is empty: its first line must name the columns", field="line 1"
        )
    names = [name.strip().lstrip("\ufeff").strip().lower() for name in header]
    columns: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in FIELDS and name not in columns:
            columns[name] = position
    missing = [name for name in ("date", "pageviews") if name not in columns]
    if missing:
        raise InvalidInput(
            f"line 1: the header names no column {' or '.join(repr(m) for m in missing)} "
            f"(it names {', '.join(repr(n) for n in names)})",
            field="line 1",
        )
    days: list[ImportedDay] = []
    found: list[int] = []
    seen: dict[date, int] = {}
    today_line: int | None = None
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {line}"
        if len(row) <= max(columns.values()):
            raise InvalidInput(f"{where}: {len(row)} columns, the header names more", field=where)
        text = row[columns["date"]].strip()
        try:
            if not DAY.fullmatch(text):
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{where}: 'date' must be a date YYYY-MM-DD, not {text[:40]!r}", field=where
            ) from None
        if day == today and today_line is None:
            today_line = line
            continue
        if not FIRST_DAY <= day < today:
            raise InvalidInput(
                f"{where}: 'date' must be a day from {FIRST_DAY} to the day before today "
                f"({today} in the site's timezone), not {day}",
                field=where,
            )
        if day in seen:
            raise InvalidInput(f"{where}: {day} is on line {seen[day]} already", field=where)
        seen[day] = line
        counts: dict[str, int] = {}
        for metric in METRICS:
            if metric not in columns:
                continue
            cell = row[columns[metric]].strip()
            if not NUMBER.fullmatch(cell) or int(cell) > MAX_DAY_COUNT:
                raise InvalidInput(
                    f"{where}: '{metric}' must be a whole number from 0 to {MAX_DAY_COUNT}, "
                    f"not {cell[:40]!r}",
                    field=where,
                )
            counts[metric] = int(cell)
        days.append(ImportedDay(day, **counts))
        found.append(line)
    return CsvDays(days, found, today_line)
