"""What the commands print: JSON with ``--json``, else readable text and tables; and errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from analytics.errors import (
    STORE_UNAVAILABLE_MESSAGE,
    AnalyticsError,
    SettingsError,
    StoreUnavailable,
)
from analytics.periods import WINDOWS
from analytics.reading import Counters
from analytics.sites import METRICS, Site

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print JSON instead of text; an error too, on stdout: {"error": {"code", "message"}}.',
)

EXIT_CODES = {400: 2, 404: 3, 409: 4, 503: 5}
"""Exit status by kind of error: 2 invalid input (as for click's usage errors), 3 unknown site
or reset, 4 conflict, 5 Redis unavailable; 1 for anything else that stops a command."""


REDIS_DOWN = (
    f"{STORE_UNAVAILABLE_MESSAGE}: check that Redis runs and that the Redis URL setting "
    "ANALYTICS_REDIS_URL points to it"
)


def exit_code(err: AnalyticsError) -> int:
    if isinstance(err, SettingsError):
        return 2
    return EXIT_CODES.get(err.status, 1)


def print_error(code: str, message: str, *, as_json: bool) -> None:
    """An error as the HTTP API words it, on stdout, with ``--json``; else a line on stderr."""
    if as_json:
        print_json({"error": {"code": code, "message": message}})
    else:
        click.echo(f"analytics: {message}", err=True)


def fail(err: AnalyticsError, as_json: bool) -> NoReturn:
    """Says what stopped the command (what to check when Redis is away) and exits by its kind."""
    message = REDIS_DOWN if isinstance(err, StoreUnavailable) else err.message
    print_error(err.code, message, as_json=as_json)
    sys.exit(exit_code(err))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def answer(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    """Prints ``data`` as JSON with ``--json``, else the readable ``text`` made of it."""
    if as_json:
        print_json(data)
    else:
        click.echo(text())


def count(value: int) -> str:
    return f"{value:,}"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: int = 0) -> str:
    """Columns padded to their widest cell; the last ``right`` columns (numbers) right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    first_right = len(headers) - right
    lines = []
    for row in cells:
        parts = [
            cell.rjust(widths[i]) if i >= first_right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def windows_table(doc: Counters) -> str:
    rows = [
        [name, *(count(doc.windows[name].metric(m)) for m in METRICS)]
        for name in WINDOWS
        if name in doc.windows
    ]
    return table(["window", *METRICS], rows, right=len(METRICS))


def site_lines(site: Site) -> str:
    """Every field of a site, one per line, as the admin API names them."""
    rows = []
    for key, value in site.to_dict().items():
        if key == "offsets":
            value = ", ".join(f"{m} {count(value[m])}" for m in METRICS)
        elif key == "origins":
            value = " ".join(value) or "(any)"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        rows.append([f"{key}:", value])
    return table(["", ""], rows).split("\n", 1)[1]
