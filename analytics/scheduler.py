"""Housekeeping jobs (close finished periods, trim online sets, delete old salts) and the
APScheduler that runs them once across every process and host."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from analytics.clock import Clock, epoch_ms
from analytics.errors import AnalyticsError
from analytics.housekeeping import GRAINS, Retention, due
from analytics.metrics import Metrics
from analytics.periods import local_date
from analytics.sites import Site, SiteRegistry
from analytics.store import CounterStore

log = logging.getLogger(__name__)

JOBS = ("close_periods", "trim_online", "delete_salts")


@dataclass(frozen=True)
class HousekeepingPolicy:
    retention: Retention = field(default_factory=Retention)
    # A period closes this long after it ends, so that a hit stamped by a process whose clock
    # runs a little behind still lands before its period is frozen.
    grace: timedelta = timedelta(minutes=5)
    interval_seconds: float = 60.0
    lock_seconds: float = 60.0


class Housekeeper:
    """The jobs themselves. Each is idempotent: a second run changes nothing."""

    def __init__(
        self,
        store: CounterStore,
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
        today = local_date(now - self.policy.grace, site.zone)
        first_day = today - timedelta(days=self.policy.retention.days)
        state = self.store.last_closed(site.id)
        for grain in GRAINS:
            for period in due(grain, state.get(str(grain)), today, site.week_start, first_day):
                retired = self.policy.retention.retired_by(period)
                if self.store.close_period(site.id, period, retired):
                    closed += 1
                    if self.metrics is not None:
                        self.metrics.periods_closed.labels(grain=str(grain)).inc()
        return closed

    def trim_online(self) -> int:
        """Forgets visitors who can neither be online nor continue a visit any more."""
        removed = 0
        now_ms = epoch_ms(self.clock())
        for site in self.sites.all():
            keep_s = max(site.session_timeout_seconds, site.online_window_seconds)
            removed += self.store.trim_online(site.id, now_ms - keep_s * 1000)
        return removed

    def delete_salts(self) -> int:
        """Deletes the salts of days that have ended everywhere on Earth (UTC-12)."""
        earliest_open_day = (self.clock() - timedelta(hours=12)).astimezone(UTC).date()
        return self.store.delete_salts_before(earliest_open_day)

    def run(self, job: str) -> bool:
        """Runs ``job`` if no other process runs it now; True if this call ran it."""
        work: Callable[[], int] = getattr(self, job)
        with self.store.exclusive(job, self.policy.lock_seconds) as mine:
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
            "housekeeping %s: %d in %.3f s",
            job,
            result,
            elapsed,
            extra={"event": "housekeeping", "job": job, "result": result, "seconds": elapsed},
        )
        return True

    def run_all(self) -> None:
        for job in JOBS:
            self.run(job)


def _guarded(housekeeper: Housekeeper, job: str) -> Callable[[], None]:
    def run() -> None:
        try:
            housekeeper.run(job)
        except AnalyticsError as err:  # Redis away: the next run catches up
            log.warning(
                "housekeeping %s failed: %s",
                job,
                err.message,
                extra={"event": "housekeeping_failed", "job": job},
            )

    return run


def build_scheduler(housekeeper: Housekeeper, *, blocking: bool = False) -> BaseScheduler:
    """An APScheduler that runs every job now (the catch-up) and then at a fixed UTC interval.

    An interval, not a cron time: no wall-clock hour that a DST change skips or repeats. Each
    run asks which periods have ended, so a late or missed run only closes them later.
    """
    options = {"timezone": UTC, "job_defaults": {"coalesce": True, "max_instances": 1}}
    scheduler: BaseScheduler = (
        BlockingScheduler(**options) if blocking else BackgroundScheduler(**options)
    )
    interval = housekeeper.policy.interval_seconds
    for job in JOBS:
        scheduler.add_job(
            _guarded(housekeeper, job),
            IntervalTrigger(seconds=interval, timezone=UTC),
            id=job,
            name=job,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
    return scheduler
