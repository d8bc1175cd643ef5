"""Where a period closes: the housekeeping jobs (close finished periods into the history, trim
the online sets, delete old salts), each idempotent, and the calendar decisions they act on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from analytics.admin import log_weeks_built
from analytics.clock import Clock, epoch_ms
from analytics.errors import AnalyticsError
from analytics.metrics import Metrics
from analytics.periods import (
    Grain,
    Period,
    WeekStart,
    end_of,
    from_name,
    local_date,
    months_before,
    period_of,
)
from analytics.sites import Site, SiteRegistry
from analytics.store import Store
from analytics.store.salts import Rewrite

GRAINS = (Grain.DAY, Grain.WEEK, Grain.MONTH)


@dataclass(frozen=True)
class Retention:
    """How long period keys stay after their period: long enough for every open window."""

    days: int = 62

    def retired_by(self, period: Period) -> Period:
        """The period of the same grain whose keys go when ``period`` is closed."""
        assert period.start is not None
        if period.grain is Grain.DAY:
            return Period(Grain.DAY, period.start - timedelta(days=self.days))
        if period.grain is Grain.WEEK:
            weeks = max(2, -(-self.days // 7))
            return Period(Grain.WEEK, period.start - timedelta(weeks=weeks))
        months = max(2, -(-self.days // 28))
        return Period(Grain.MONTH, months_before(period.start, months))


def due(
    grain: Grain,
    last_closed: str | None,
    today: date,
    week_start: WeekStart,
    first_day: date,
) -> list[Period]:
    """The periods of ``grain`` that ended before local ``today`` and are not closed, oldest first.

    With nothing closed yet, closing starts at the period of ``first_day``.
    """
    if last_closed is None:
        current = period_of(grain, first_day, week_start)
    else:
        current = period_of(grain, end_of(from_name(grain, last_closed)), week_start)
    periods: list[Period] = []
    while end_of(current) <= today:
        periods.append(current)
        current = period_of(grain, end_of(current), week_start)
    return periods


log = logging.getLogger(__name__)

JOBS = ("close_periods", "trim_online", "delete_salts")
RESULTS = {
    "close_periods": "{} finished periods closed into the history",
    "trim_online": "{} visitors no longer online forgotten",
    "delete_salts": "{} salts of ended days deleted",
}
"""What each job's count means, for its log line (the first run after a start catches up)."""


@dataclass(frozen=True)
class HousekeepingPolicy:
    retention: Retention = field(default_factory=Retention)
    # A period closes this long after it ends, so that a hit stamped by a process whose clock
    # runs a little behind still lands before its period is frozen.
    grace: timedelta = timedelta(minutes=5)
    interval_seconds: float = 60.0
    lock_seconds: float = 60.0
    closed_lists: tuple[int, int] = (1000, 100)
    """How many pages and referrer hosts a closed period's lists keep: its top, for the windows
    that still show it (yesterday, last week, last month)."""


class Housekeeper:
    """The jobs themselves. Each is idempotent: a second run changes nothing."""

    def __init__(
        self,
        store: Store,
        sites: SiteRegistry,
        clock: Clock,
        policy: HousekeepingPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.sites = sites
        self.clock = clock
        self.policy = policy or HousekeepingPolicy()
        self.metrics = metrics
        self._rewrite_due = False
        """Whether salts were deleted but Redis's append-only file not yet rewritten."""

    def close_periods(self) -> int:
        """Closes every finished day, week and month of every site, oldest first; returns how many.

        After an outage this catches up on every period missed, in order.
        """
        closed = 0
        now = self.clock()
        for site in self.sites.all():
            try:
                closed += self._close_site(site, now)
            except AnalyticsError as err:  # one site's trouble must not stop the others
                log.error(
                    "closing the periods of %s failed: %s",
                    site.id,
                    err.message,
                    extra={"event": "housekeeping_failed", "job": "close_periods", "site": site.id},
                )
        return closed

    def _close_site(self, site: Site, now: datetime) -> int:
        closed = 0
        # A change of week start that its process could not apply (or lost a race) is applied
        # here, before any week closes.
        built = self.store.weeks.follow(site.id, local_date(now, site.zone))
        if built is not None:
            log_weeks_built(site.id, site.week_start, built)
        today = local_date(now - self.policy.grace, site.zone)
        first_day = today - timedelta(days=self.policy.retention.days)
        state = self.store.history.last_closed(site.id)
        for grain in GRAINS:
            for period in due(grain, state.get(str(grain)), today, site.week_start, first_day):
                retired = self.policy.retention.retired_by(period)
                keep = self.policy.closed_lists
                if self.store.history.close_period(site.id, period, retired, keep, site.week_start):
                    closed += 1
                    if self.metrics is not None:
                        self.metrics.periods_closed.labels(grain=str(grain)).inc()
        return closed

    def trim_online(self) -> int:
        """Forgets visitors who can neither be online nor continue a visit any more."""
        removed = 0
        now_ms = epoch_ms(self.clock())
        for site in self.sites.all():
            removed += self.store.counts.trim_online(
                site.id, now_ms - site.online_keep_seconds * 1000
            )
        return removed

    def delete_salts(self) -> int:
        """Deletes the salts of days that have ended everywhere on Earth (UTC-12), then has Redis
        rewrite its append-only file, so that they leave the disk too; a rewrite Redis could not
        start (one already running began before the deletion) is asked for again at the next
        run."""
        earliest_open_day = (self.clock() - timedelta(hours=12)).astimezone(UTC).date()
        deleted = self.store.salts.delete_before(earliest_open_day)
        if deleted or self._rewrite_due:
            self._rewrite_due = self.store.salts.rewrite_files() is Rewrite.BUSY
        return deleted

    def run(self, job: str) -> bool:
        """Runs ``job`` if no other process runs it now; True if this call ran it."""
        work: Callable[[], int] = getattr(self, job)
        with self.store.locks.exclusive(job, self.policy.lock_seconds) as mine:
            if not mine:
                if self.metrics is not None:
                    self.metrics.lock_contention.labels(task=job).inc()
                return False
            started = time.perf_counter()
            result = work()
            elapsed = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.job_duration.labels(task=job).observe(elapsed)
            self.metrics.job_last_success.labels(task=job).set(time.time())
        log.info(
            "housekeeping %s: %s in %.3f s",
            job,
            RESULTS[job].format(result),
            elapsed,
            extra={"event": "housekeeping", "job": job, "result": result, "seconds": elapsed},
        )
        return True

    def run_all(self) -> None:
        for job in JOBS:
            self.run(job)
