"""The admin commands of ``analytics``: sites, offsets, reset, audit, pages and referrers,
history and import.

Each one acts through the same ``Admin`` service as the admin API, so validation, audit
entries and undo are one implementation. Readable tables by default, ``--json`` for scripts.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from analytics.admin import RESETTABLE, Admin
from analytics.audit import MAX_AUDIT_ENTRIES
from analytics.cli.connection import redis_for
from analytics.cli.output import (
    answer,
    count,
    json_option,
    print_json,
    shorten,
    site_lines,
    table,
    windows_table,
)
from analytics.history import parse_range
from analytics.imports import MAX_IMPORT_DAYS, check_daily, days_from_csv
from analytics.pages import MAX_LIMIT
from analytics.periods import WINDOWS, WeekStart
from analytics.services import build_services
from analytics.settings import Settings
from analytics.sites import METRICS, Offsets, Site, SiteChanges


def actor() -> str:
    """Who the audit log names for a command: the local user and host, as the API names an IP."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


@contextmanager
def admin_service() -> Iterator[Admin]:
    """The admin service on the configured Redis (or the running `analytics serve`'s own)."""
    settings = Settings.load()
    with redis_for(settings, share_running=True) as ready:
        yield build_services(ready, seed=False).admin


# --- sites -------------------------------------------------------------------------------


@click.group()
def sites() -> None:
    """List, show, add, update and delete sites."""


@sites.command("list")
@json_option
def list_sites(as_json: bool) -> None:
    """Every site with today's and all-time counts."""
    with admin_service() as admin:
        listed = admin.list_sites()
        docs = {site.id: admin.reading.counters(site.id, fresh=True) for site in listed}
    if as_json:
        print_json({"sites": [{**s.to_dict(), "counters": docs[s.id].to_json()} for s in listed]})
        return
    if not listed:
        click.echo("no sites: add one with `analytics sites add <id>`")
        return
    rows = []
    for site in listed:
        doc = docs[site.id]
        metric = site.box_metric
        rows.append(
            [
                site.id,
                site.name,
                site.timezone,
                metric,
                count(doc.online),
                count(doc.value("today", metric)),
                count(doc.value("total", metric)),
            ]
        )
    click.echo(
        table(["id", "name", "timezone", "metric", "online", "today", "total"], rows, right=3)
    )


@sites.command("show")
@click.argument("site")
@json_option
def show_site(site: str, as_json: bool) -> None:
    """One site's settings and its counters in every window."""
    with admin_service() as admin:
        found = admin.get_site(site)
        doc = admin.reading.counters(site, fresh=True)
    if as_json:
        print_json({**found.to_dict(), "counters": doc.to_json()})
        return
    click.echo(site_lines(found))
    click.echo(f"\nonline now: {count(doc.online)}    as of {doc.as_of}\n")
    click.echo(windows_table(doc))


def site_options(command: Any) -> Any:
    """The site fields of the admin API as options; only those given are sent."""
    options = [
        click.option("--name", help="Display name."),
        click.option("--timezone", help="IANA timezone of the site's days, e.g. Asia/Ho_Chi_Minh."),
        click.option("--week-start", type=click.Choice(["monday", "sunday"])),
        click.option(
            "--origin",
            "origins",
            multiple=True,
            help="An origin allowed to send hits (repeat it); replaces the list.",
        ),
        click.option(
            "--any-origin", is_flag=True, help="Accept hits from any origin (empties the list)."
        ),
        click.option("--online-window", "online_window_seconds", type=int, help="Seconds."),
        click.option("--session-timeout", "session_timeout_seconds", type=int, help="Seconds."),
        click.option("--box-metric", type=click.Choice(list(METRICS))),
        click.option("--honor-gpc/--ignore-gpc", default=None, help="Skip Sec-GPC: 1 visitors."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def site_changes(
    *,
    name: str | None,
    timezone: str | None,
    week_start: str | None,
    origins: tuple[str, ...],
    any_origin: bool,
    online_window_seconds: int | None,
    session_timeout_seconds: int | None,
    box_metric: str | None,
    honor_gpc: bool | None,
) -> SiteChanges:
    """The changes the site options ask for, each validated as the admin API does."""
    if any_origin and origins:
        raise click.UsageError("--origin and --any-origin exclude each other")
    return SiteChanges(
        name=name,
        timezone=timezone,
        week_start=None if week_start is None else WeekStart(week_start),
        origins=() if any_origin else (origins or None),
        online_window_seconds=online_window_seconds,
        session_timeout_seconds=session_timeout_seconds,
        box_metric=box_metric,
        honor_gpc=honor_gpc,
    )


def show_changed(site: Site, verb: str, as_json: bool) -> None:
    answer(site.to_dict(), as_json, lambda: f"site '{site.id}' {verb}\n{site_lines(site)}")


@sites.command("add")
@click.argument("site")
@site_options
@json_option
def add_site(site: str, as_json: bool, **options: Any) -> None:
    """Register SITE; fields not given take their defaults."""
    new = Site.new(site, site_changes(**options))
    with admin_service() as admin:
        created = admin.create_site(new, actor())
    show_changed(created, "added", as_json)


@sites.command("update")
@click.argument("site")
@site_options
@json_option
def update_site(site: str, as_json: bool, **options: Any) -> None:
    """Change the given fields of SITE."""
    changes = site_changes(**options)
    if not changes.given():
        raise click.UsageError("nothing to change: give at least one field option")
    with admin_service() as admin:
        updated = admin.update_site(site, changes, actor())
    show_changed(updated, "updated", as_json)


@sites.command("delete")
@click.argument("site")
@click.option("--confirm", metavar="SITE", help="Repeat the site id: deleting removes every count.")
@json_option
def delete_site(site: str, confirm: str | None, as_json: bool) -> None:
    """Remove SITE and every count of it. There is no undo."""
    if confirm != site:
        raise click.UsageError(f"deleting removes every count of '{site}': add --confirm {site}")
    with admin_service() as admin:
        result = admin.delete_site(site, confirm, actor())
    answer(result.to_json(), as_json, lambda: f"site '{site}' deleted ({result.keys} keys removed)")


# --- offsets -----------------------------------------------------------------------------


@click.command()
@click.argument("site")
@click.option("--pageviews", type=int, help="Initial pageviews added to total.")
@click.option("--visits", type=int, help="Initial visits added to total.")
@click.option("--visitors", type=int, help="Initial visitors added to total.")
@json_option
def offsets(
    site: str, pageviews: int | None, visits: int | None, visitors: int | None, as_json: bool
) -> None:
    """Show SITE's offsets or, with any option, replace all three (one not given becomes 0).

    Offsets are the counts of a counter migrated from another system: they are added to
    the total window and kept by resets.
    """
    given = {"pageviews": pageviews, "visits": visits, "visitors": visitors}
    replacing = any(value is not None for value in given.values())
    offsets = Offsets(pageviews or 0, visits or 0, visitors or 0) if replacing else None
    with admin_service() as admin:
        if offsets is None:
            result = admin.get_site(site).offsets
            verb = "are"
        else:
            result = admin.set_offsets(site, offsets, actor()).offsets
            verb = "set to"
    answer(
        asdict(result),
        as_json,
        lambda: (
            f"offsets of '{site}' {verb}:\n"
            + table(METRICS, [[count(getattr(result, m)) for m in METRICS]], right=3)
        ),
    )


# --- reset -------------------------------------------------------------------------------


@click.command()
@click.argument("site")
@click.option(
    "--window",
    "windows",
    multiple=True,
    type=click.Choice(list(RESETTABLE)),
    help="A window to empty (repeat it).",
)
@click.option("--all", "all_windows", is_flag=True, help="Empty every resettable window.")
@click.option("--undo", "undo_id", metavar="RESET_ID", help="Undo that reset instead.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def reset(
    site: str,
    windows: tuple[str, ...],
    all_windows: bool,
    undo_id: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Empty windows of SITE (offsets are kept), or undo a reset with --undo.

    What a reset removes is kept aside; undo adds it back onto the hits counted since, until
    a period it emptied ends (a day at midnight; the total within 30 days).
    """
    if undo_id is not None:
        if windows or all_windows:
            raise click.UsageError("--undo takes no --window or --all")
        with admin_service() as admin:
            undone = admin.undo(site, undo_id, actor())
        answer(
            undone.to_json(),
            as_json,
            lambda: (
                f"reset {undo_id} of '{site}' undone; counters now:\n\n"
                + windows_table(undone.counters)
            ),
        )
        return
    if all_windows == bool(windows):
        raise click.UsageError("give --window (one or more) or --all")
    chosen = ["all"] if all_windows else list(windows)
    if not yes and not sys.stdin.isatty():
        raise click.UsageError("no terminal to confirm on: add --yes to reset without asking")
    with admin_service() as admin:
        admin.get_site(site)  # an unknown site is said before anything is asked
        if not yes:
            click.confirm(f"Empty {', '.join(chosen)} of site '{site}'?", abort=True, err=True)
        result = admin.reset(site, RESETTABLE if all_windows else windows, actor())
    answer(
        result.to_json(),
        as_json,
        lambda: (
            f"reset {result.reset_id} of '{site}' done; the counters before it:\n\n"
            + windows_table(result.before)
            + f"\n\nundo with: analytics reset {site} --undo {result.reset_id}"
        ),
    )


# --- audit -------------------------------------------------------------------------------


@click.command()
@click.option("--limit", type=click.IntRange(1, MAX_AUDIT_ENTRIES), default=50, show_default=True)
@json_option
def audit(limit: int, as_json: bool) -> None:
    """The admin actions and failed authentications, newest first."""
    with admin_service() as admin:
        entries = admin.audit(limit)
    if as_json:
        print_json({"entries": [e.to_json() for e in entries]})
        return
    rows = [
        [
            e.time,
            e.action,
            e.site or "-",
            e.ip,
            shorten(json.dumps(e.change, ensure_ascii=False), 100),
        ]
        for e in entries
    ]
    click.echo(table(["time", "action", "site", "by", "change"], rows))


# --- pages and referrers ---------------------------------------------------------------


def list_options(command: Any) -> Any:
    command = click.option(
        "--window",
        type=click.Choice(WINDOWS),
        default="today",
        show_default=True,
        help="The window listed.",
    )(command)
    return click.option(
        "--limit", type=click.IntRange(1, MAX_LIMIT), default=10, show_default=True
    )(command)


def print_listing(kind: str, site: str, window: str, limit: int, as_json: bool) -> None:
    settings = Settings.load()
    with redis_for(settings, share_running=True) as ready:
        found = build_services(ready, seed=False).pages.top(kind, site, window, limit)
    name = "path" if kind == "pages" else "host"
    if as_json:
        entries = [{name: entry, "pageviews": views} for entry, views in found.entries]
        print_json({"site": site, "window": window, "start": found.start, kind: entries})
        return
    since = f"since {found.start}" if found.start else "in all"
    click.echo(f"{site}: {window} ({since})")
    rows = [[entry, count(views)] for entry, views in found.entries]
    click.echo(table([name, "pageviews"], rows, right=1) if rows else f"no {kind} yet")


@click.command()
@click.argument("site")
@list_options
@json_option
def pages(site: str, window: str, limit: int, as_json: bool) -> None:
    """The most viewed pages of SITE in a window, most viewed first."""
    print_listing("pages", site, window, limit, as_json)


@click.command()
@click.argument("site")
@list_options
@json_option
def referrers(site: str, window: str, limit: int, as_json: bool) -> None:
    """The hosts readers of SITE came from in a window, most first."""
    print_listing("referrers", site, window, limit, as_json)


# --- history -----------------------------------------------------------------------------


@click.command()
@click.argument("site")
@click.option("--from", "first", help="First local day, YYYY-MM-DD.")
@click.option("--to", "last", help="Last local day, YYYY-MM-DD.")
@click.option(
    "--all",
    "every_day",
    is_flag=True,
    help="Every day there is, from the site's first day with any count to today.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@json_option
def history(
    site: str, first: str | None, last: str | None, every_day: bool, fmt: str, as_json: bool
) -> None:
    """The daily counts of SITE, one line per local day, zeros included, today live:
    --from and --to (at most 366 days), or --all.

    CSV by default (what `analytics import` reads back); --json (or --format json) prints JSON.
    """
    if every_day and (first or last):
        raise click.UsageError("--all takes no --from or --to")
    if not every_day and not (first and last):
        raise click.UsageError("give --from and --to, or --all")
    settings = Settings.load()
    span = None if every_day else parse_range(first, last)
    with redis_for(settings, share_running=True) as ready:
        found = build_services(ready, seed=False).history
        days = found.all_days(site) if span is None else found.days(site, *span)
    if as_json or fmt == "json":
        print_json({"site": site, "days": days})
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, ["date", "pageviews", "visits", "visitors"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(days)
    click.echo(out.getvalue(), nl=False)


# --- import ------------------------------------------------------------------------------


@click.command("import")
@click.argument("site")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", lazy=False))
@click.option("--dry-run", is_flag=True, help="Check the file and say what it holds; import none.")
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Import a file whose days are a month or a week apart (refused otherwise, as an "
    "export by month or week).",
)
@json_option
def import_history(
    site: str, file: io.TextIOWrapper, dry_run: bool, allow_gaps: bool, as_json: bool
) -> None:
    """Import the daily counts of an earlier counter into SITE from a CSV FILE ("-" for stdin).

    The header names the columns: date (YYYY-MM-DD), pageviews, and optionally visits and
    visitors (any case; other columns are ignored), as in Plausible's export (visitors.csv)
    or what `analytics history --format csv` writes. One row a day: a file with one row a
    month (every date the 1st) or a week (7 days apart) is refused unless --allow-gaps.
    Days before today only (a line of today, as an export ends with, is skipped). Importing
    a day again replaces what was imported for it before, never what was counted live; a big
    file goes in calls of 3660 days.
    """
    with admin_service() as admin:
        today = admin.today(site)
        try:
            parsed = days_from_csv(file, today)
        except UnicodeDecodeError as err:
            raise click.UsageError(f"{file.name} is not UTF-8 text: {err.reason}") from None
        days = parsed.days
        if not allow_gaps:
            check_daily(days)
        imported = 0
        if not dry_run:
            for at in range(0, len(days), MAX_IMPORT_DAYS):
                imported += admin.import_history(site, days[at : at + MAX_IMPORT_DAYS], actor())
    dates = [d.day for d in days]
    result = {
        "site": site,
        "imported": imported,
        "days": len(days),
        "first": str(min(dates)) if dates else None,
        "last": str(max(dates)) if dates else None,
        "dry_run": dry_run,
    }

    if parsed.today_line is not None:
        result["skipped"] = {"line": parsed.today_line, "date": str(today)}

    def text() -> str:
        note = ""
        if parsed.today_line is not None:
            note = f"\nline {parsed.today_line} skipped: today ({today}) is still counted live"
        return summary() + note

    def summary() -> str:
        if not days:
            return f"{file.name} holds no day before today: nothing imported"
        span = f"{len(days)} days from {result['first']} to {result['last']}"
        if dry_run:
            return f"{file.name} holds {span}; nothing imported (dry run)"
        return f"imported {span} into '{site}'"

    answer(result, as_json, text)


ADMIN_COMMANDS: tuple[click.Command, ...] = (
    sites,
    offsets,
    reset,
    audit,
    pages,
    referrers,
    history,
    import_history,
)
