"""The admin service: sites, offsets, resets and the audit log, shared by the admin API and
the CLI. Its methods take typed values; each caller parses its own input into them."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from analytics.audit import AuditEntry, AuditLog
from analytics.clock import Clock
from analytics.errors import Conflict, InvalidInput, UnknownReset, UnknownSite
from analytics.imports import ImportedDay, check_days
from analytics.periods import (
    Grain,
    WeekStart,
    from_name,
    local_date,
    week_start_of,
    windows_at,
)
from analytics.reading import Counters, Reading
from analytics.sites import Offsets, Site, SiteChanges, SiteRegistry
from analytics.store import Store, WindowCounts


def week_start_changed(store: Store, clock: Clock, before: Site, after: Site) -> None:
    """Once a site's week start has changed from ``before`` to ``after``: this week and last
    week are built again from their days, by the new start (once, whoever sees the change first:
    this process or the housekeeping)."""
    if before.week_start is after.week_start:
        return
    now = clock()
    built = store.weeks.follow(
        after.id,
        local_date(now, after.zone),
        assumed=before.week_start,
        old_today=local_date(now, before.zone),
    )
    if built is not None:
        log_weeks_built(after.id, after.week_start, built)


def site_saving(store: Store, before: Site) -> None:
    """Before a site is updated: the start its week keys follow is on record (a site registered
    before it was recorded), for the housekeeping to apply a change its process could not."""
    store.weeks.begin(before.id, before.week_start)


def site_saved(store: Store, clock: Clock, before: Site | None, after: Site) -> None:
    """After a site was registered (``before`` None) or updated: what its weeks need."""
    if before is None:
        store.weeks.begin(after.id, after.week_start)
    else:
        week_start_changed(store, clock, before, after)


def log_weeks_built(site_id: str, week_start: WeekStart, pageviews: tuple[int, int]) -> None:
    log.info(
        "%s: weeks now start on %s; this week and last week built again from their days",
        site_id,
        week_start,
        extra={
            "event": "weeks_rebuilt",
            "site": site_id,
            "week_start": str(week_start),
            "this_week_pageviews": pageviews[0],
            "last_week_pageviews": pageviews[1],
        },
    )


RESETTABLE = ("today", "this_week", "this_month", "total")
RESET_ID = re.compile(r"[0-9a-f]{16}")
log = logging.getLogger("analytics.admin")
KEEP_RESETS_SECONDS = 30 * 24 * 3600
"""How long a reset can be undone: what it removed is kept aside this long."""


@dataclass(frozen=True)
class SiteDeleted:
    site: str
    keys: int
    """How many Redis keys went with it."""

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "deleted": True, "keys": self.keys}


@dataclass(frozen=True)
class ResetDone:
    reset_id: str
    before: Counters
    """The counters as they were before the reset."""

    def to_json(self) -> dict[str, Any]:
        return {"reset_id": self.reset_id, "before": self.before.to_json()}


@dataclass(frozen=True)
class UndoDone:
    reset_id: str
    counters: Counters
    """The counters once the reset was undone."""

    def to_json(self) -> dict[str, Any]:
        return {"reset_id": self.reset_id, "undone": True, "counters": self.counters.to_json()}


class Admin:
    def __init__(
        self,
        store: Store,
        sites: SiteRegistry,
        reading: Reading,
        audit: AuditLog,
        clock: Clock,
        list_caps: tuple[int, int] = (10_000, 1_000),
    ) -> None:
        self.list_caps = list_caps
        """How many entries a pages list and a referrers list keep (the ``max_*`` settings)."""
        self.store = store
        self.sites = sites
        self.reading = reading
        self.audit_log = audit
        self.clock = clock
        self.record = audit.record

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        return self.audit_log.entries(limit)

    def list_sites(self) -> list[Site]:
        return self.sites.all()

    def get_site(self, site_id: str) -> Site:
        return self._site(site_id)

    def _site(self, site_id: str) -> Site:
        self.sites.forget(site_id)
        return self.sites.get(site_id)

    def create_site(self, site: Site, actor: str) -> Site:
        try:
            self._site(site.id)
        except UnknownSite:
            pass
        else:
            raise Conflict(f"site '{site.id}' exists already")
        self.sites.save(site)
        site_saved(self.store, self.clock, None, site)
        self.record("site_created", site.id, actor, site.to_dict())
        return site

    def update_site(self, site_id: str, changes: SiteChanges, actor: str) -> Site:
        current = self._site(site_id)
        site = changes.applied_to(current)
        if site.week_start is not current.week_start:
            site_saving(self.store, current)
        self.sites.save(site)
        site_saved(self.store, self.clock, current, site)
        self.reading.forget(site_id)
        before, after = current.to_dict(), site.to_dict()
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        self.record("site_updated", site_id, actor, changed)
        return site

    def set_offsets(self, site_id: str, offsets: Offsets, actor: str) -> Site:
        """Replaces all three offsets."""
        current = self._site(site_id)
        site = SiteChanges(offsets=offsets).applied_to(current)
        self.sites.save(site)
        self.reading.forget(site_id)
        change = {"from": current.to_dict()["offsets"], "to": site.to_dict()["offsets"]}
        self.record("offsets_set", site_id, actor, change)
        return site

    def delete_site(self, site_id: str, confirm: str | None, actor: str) -> SiteDeleted:
        """Removes the site and every key of it; ``confirm`` must repeat its id."""
        site = self._site(site_id)
        if confirm != site_id:
            raise InvalidInput(
                f"deleting removes every count: add ?confirm={site_id}", field="confirm"
            )
        deleted = self.store.sites.delete(site_id)
        self.sites.forget(site_id)
        self.reading.forget(site_id)
        self.record("site_deleted", site_id, actor, {"site": site.to_dict(), "keys": deleted})
        return SiteDeleted(site_id, deleted)

    def today(self, site_id: str) -> date:
        """The site's local day now: imported days lie before it."""
        return local_date(self.clock(), self._site(site_id).zone)

    def import_history(self, site_id: str, days: Sequence[ImportedDay], actor: str) -> int:
        """Imports the daily counts of an earlier counter (days before today, at most
        MAX_IMPORT_DAYS): each replaces what was imported for its day before, never what was
        counted live. Returns how many days."""
        check_days(days, self.today(site_id))
        if not days:
            return 0
        imported = self.store.history.import_days(
            site_id,
            [(d.day, WindowCounts(d.pageviews, d.visits, d.visitors)) for d in days],
        )
        self.reading.forget(site_id)
        dates = [d.day for d in days]
        change = {"days": imported, "first": str(min(dates)), "last": str(max(dates))}
        self.record("history_imported", site_id, actor, change)
        return imported

    def reset(self, site_id: str, windows: Sequence[str], actor: str) -> ResetDone:
        """Empties ``windows`` (any of RESETTABLE; never the offsets), keeping what it removes
        so that it can be undone."""
        site = self._site(site_id)
        if not windows or any(w not in RESETTABLE for w in windows):
            raise bad_windows()
        windows = list(dict.fromkeys(windows))
        before = self.reading.counters(site_id, fresh=True)
        by_name = windows_at(local_date(self.clock(), site.zone), site.week_start)
        periods = [by_name[w] for w in windows]
        reset_id = secrets.token_hex(8)
        record = {
            "time": self.clock().isoformat(timespec="seconds"),
            "windows": json.dumps(windows),
            "periods": json.dumps([[str(p.grain), p.name] for p in periods]),
            "week_changes": str(self.store.weeks.changes(site_id)),
            "before": json.dumps(before.to_json(), ensure_ascii=False),
            "undone": "0",
        }
        self.store.resets.reset(site_id, reset_id, periods, record, KEEP_RESETS_SECONDS)
        self.reading.forget(site_id)  # the cache holds ``before`` now
        self.record("reset", site_id, actor, {"reset_id": reset_id, "windows": windows})
        return ResetDone(reset_id, before)

    def undo(self, site_id: str, reset_id: str, actor: str) -> UndoDone:
        """Adds back what a reset removed; hits counted since stay. 409 the second time."""
        site = self._site(site_id)
        record = (
            self.store.resets.record(site_id, reset_id) if RESET_ID.fullmatch(reset_id) else None
        )
        if record is None:
            raise UnknownReset(f"no reset '{reset_id[:40]}' of site '{site_id}'")
        periods = [from_name(Grain(g), name) for g, name in json.loads(record["periods"])]
        # Weeks built again since, by another start, hold their days' counts already: what
        # the reset took from the days goes back to the days, and the weeks are built again.
        if "week_changes" in record:
            rebuilt = record["week_changes"] != str(self.store.weeks.changes(site_id))
        else:  # a reset recorded before changes were counted: its weeks tell
            rebuilt = any(
                p.grain is Grain.WEEK and p.start != week_start_of(p.start, site.week_start)
                for p in periods
                if p.start is not None
            )
        if rebuilt:
            periods = [p for p in periods if p.grain is not Grain.WEEK]
        done = self.store.resets.undo(site_id, reset_id, periods, self.list_caps)
        if done == 1 and rebuilt:
            self.store.weeks.rebuild(site_id, local_date(self.clock(), site.zone))
        if done == 0:
            raise Conflict(f"reset '{reset_id}' was undone already")
        if done == -2:
            raise Conflict(
                f"reset '{reset_id}' can no longer be undone: a period it emptied has ended and "
                "been closed into the history since (undo works until then; 'total' never ends)",
                code="period_closed",
            )
        if done < 0:
            raise UnknownReset(f"no reset '{reset_id}' of site '{site_id}'")
        self.record("reset_undone", site_id, actor, {"reset_id": reset_id})
        return UndoDone(reset_id, self.reading.counters(site_id, fresh=True))


def bad_windows() -> InvalidInput:
    return InvalidInput(
        f"'windows' must list any of {', '.join(RESETTABLE)}, or be [\"all\"]", field="windows"
    )
