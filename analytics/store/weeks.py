"""Weeks in Redis after a site's week start changed: this week and last week built again from
their days, and the weeks of the old start closed and left to expire.

The closed hash's ``w:start`` says which start the week keys follow; absent, the site's own (a
site that never changed it). A change is applied by whoever sees it first, the process that made
it or the housekeeping, once: the script checks both the site's start and ``w:start`` as read.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from analytics.periods import Grain, Period, WeekStart, from_name, week_start_of
from analytics.store.connection import Connection, text
from analytics.store.counts import list_keys, period_keys

RETIRED_WEEKS = 9
"""Weeks of the old start retired behind the older of its current week and the last week it
closed: as far back as retention keeps weeks (62 days)."""
MAX_RETIRED_WEEKS = 64
"""At most this many weeks of the old start are retired in one go (a housekeeping stopped for
over a year leaves older ones, as it would without a change)."""
OLD_WEEKS_KEPT_MS = 8 * 86_400_000
"""How long the old start's weeks stay: as long as a closed week's lists."""
ATTEMPTS = 5
BUILT, MOVED, GONE = 1, 0, -1
"""The script's answers: built; the site's start or the one the weeks follow moved meanwhile
(read both again); no such site."""


def _days(first: date, count: int) -> list[Period]:
    return [Period(Grain.DAY, first + timedelta(days=i)) for i in range(count)]


class WeekStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._script = conn.script("weeks")

    def _state(self, site_id: str) -> tuple[str, str | None, WeekStart | None]:
        """The start the week keys follow ("" for the site's own), the last week closed, and the
        site's week start (None for no such site)."""
        keys = self._conn.keys
        with self._conn.call("rebuild_weeks"):
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.hmget(keys.closed(site_id), ["w:start", "w"])
            pipe.get(keys.site_config(site_id))
            (following, closed), settings = pipe.execute()
        start = None if settings is None else WeekStart(json.loads(text(settings))["week_start"])
        return (
            "" if following is None else text(following),
            None if closed is None else text(closed),
            start,
        )

    def follow(
        self,
        site_id: str,
        today: date,
        *,
        assumed: WeekStart | None = None,
        old_today: date | None = None,
    ) -> tuple[int, int] | None:
        """Brings this week and last week to the site's week start, if the week keys follow
        another (``assumed`` when the store does not say): built again from their days up to
        local ``today``. ``old_today`` is the local day by the site's timezone before the
        change, when that changed too. Returns the two weeks' pageviews, None if nothing was to
        be done."""
        for _ in range(ATTEMPTS):
            following, closed, start = self._state(site_id)
            old = WeekStart(following) if following else assumed
            if start is None or old is None or old is start:
                return None
            status, done = self._run(
                site_id, today, old, start, following, closed, old_today or today
            )
            if status != MOVED:
                return done if status == BUILT else None
        return None  # still moving: the housekeeping's next run applies it

    def rebuild(self, site_id: str, today: date) -> tuple[int, int] | None:
        """Builds this week and last week again from their days, by the start they follow
        (after an undo added counts back to days whose weeks were built since)."""
        for _ in range(ATTEMPTS):
            following, closed, start = self._state(site_id)
            if start is None or (following and following != start):
                return None  # a change is being applied: it builds them from their days
            status, done = self._run(site_id, today, start, start, following, closed, today)
            if status != MOVED:
                return done if status == BUILT else None
        return None

    def begin(self, site_id: str, start: WeekStart) -> None:
        """Records, unless recorded already, the start a site's week keys follow: for a new site,
        and before a change of start is saved, so that a change its process could not apply
        (Redis went away in between) is applied by the housekeeping."""
        with self._conn.call("rebuild_weeks"):
            self._conn.client.hsetnx(self._conn.keys.closed(site_id), "w:start", str(start))

    def changes(self, site_id: str) -> int:
        """How many changes of week start were applied to the site's weeks."""
        with self._conn.call("rebuild_weeks"):
            found = self._conn.client.hget(self._conn.keys.closed(site_id), "w:changes")
        return 0 if found is None else int(found)

    def _run(
        self,
        site_id: str,
        today: date,
        old: WeekStart,
        new: WeekStart,
        following: str,
        closed: str | None,
        old_today: date,
    ) -> tuple[int, tuple[int, int]]:
        """The script's status (BUILT, MOVED or GONE) and the two weeks' pageviews."""
        conn = self._conn
        this_start = week_start_of(today, new)
        last_start = this_start - timedelta(days=7)
        this_days = _days(this_start, (today - this_start).days + 1)
        last_days = _days(last_start, 7)
        keys = [conn.keys.closed(site_id), conn.keys.site_config(site_id)]
        old_this = week_start_of(old_today, old)
        for start, days, replaced in (
            (this_start, this_days, old_this),
            (last_start, last_days, old_this - timedelta(days=7)),
        ):
            week = Period(Grain.WEEK, start)
            keys += period_keys(conn, site_id, [week]) + list_keys(conn, site_id, [week])
            if old is new:
                keys += list_keys(conn, site_id, [week])  # its own: nothing to take
            else:
                keys += list_keys(conn, site_id, [Period(Grain.WEEK, replaced)])
            keys += period_keys(conn, site_id, days)
        keys.append(conn.keys.counts(site_id, Period(Grain.WEEK, this_start + timedelta(days=7))))
        retired: list[Period] = []
        if old is not new:
            # From the week after the old start's current one (a timezone changed with it may
            # put today a day back), to retention's reach behind the last week it closed.
            newest = old_this + timedelta(weeks=1)
            oldest = old_this - timedelta(weeks=RETIRED_WEEKS)
            if closed is not None:
                last = from_name(Grain.WEEK, closed).start
                if last is not None and week_start_of(last, old) == last:
                    oldest = min(oldest, last - timedelta(weeks=RETIRED_WEEKS))
            count = min((newest - oldest).days // 7 + 1, MAX_RETIRED_WEEKS)
            retired = [Period(Grain.WEEK, newest - timedelta(weeks=i)) for i in range(count)]
        for week in retired:
            keys += period_keys(conn, site_id, [week]) + list_keys(conn, site_id, [week])
        args: list[str | int] = [
            len(this_days),
            len(last_days),
            len(retired),
            Period(Grain.WEEK, last_start - timedelta(days=7)).name,
            OLD_WEEKS_KEPT_MS,
            following,
            str(new),
        ]
        with conn.call("rebuild_weeks"):
            answer = self._script(keys=keys, args=args)
        status = int(answer[0])
        if status != BUILT:
            return status, (0, 0)
        return status, (int(answer[1]), int(answer[2]))
