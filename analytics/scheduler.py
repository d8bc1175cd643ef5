"""The APScheduler that runs the housekeeping jobs at a fixed interval, once across every
process and host (each run takes the job's lock)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from analytics.errors import AnalyticsError
from analytics.housekeeping import JOBS, Housekeeper

log = logging.getLogger(__name__)


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
