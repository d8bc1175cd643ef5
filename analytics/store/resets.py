"""Resets in Redis: a window's keys moved aside under a reset id, its record, and the undo that
adds them back onto the hits counted since."""

from __future__ import annotations

from collections.abc import Sequence

from analytics.periods import Period
from analytics.store.connection import Connection, text
from analytics.store.counts import list_keys, period_keys


def reset_keys(conn: Connection, site_id: str, periods: Sequence[Period]) -> list[str]:
    """What a reset moves aside, per period: its counts, its visitors, its pages and referrers
    lists, and its pages' errors."""
    keys: list[str] = []
    for period in periods:
        keys += period_keys(conn, site_id, [period])
        keys += list_keys(conn, site_id, [period])
    return keys


class ResetStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._reset = conn.script("reset")
        self._undo = conn.script("undo")

    def _aside(self, site_id: str, reset_id: str, live: list[str]) -> list[str]:
        return [self._conn.keys.set_aside(site_id, reset_id, key) for key in live]

    def reset(
        self,
        site_id: str,
        reset_id: str,
        periods: Sequence[Period],
        record: dict[str, str],
        keep_seconds: int,
    ) -> int:
        """Moves the keys of ``periods`` aside under ``reset_id``; returns how many moved."""
        live = reset_keys(self._conn, site_id, periods)
        args: list[str | int] = [keep_seconds]
        for field, value in record.items():
            args += [field, value]
        keys = [
            self._conn.keys.reset_record(site_id, reset_id),
            *live,
            *self._aside(site_id, reset_id, live),
        ]
        with self._conn.call("reset"):
            return int(self._reset(keys=keys, args=args))

    def record(self, site_id: str, reset_id: str) -> dict[str, str] | None:
        with self._conn.call("reset_record"):
            raw = self._conn.client.hgetall(self._conn.keys.reset_record(site_id, reset_id))
        return {text(k): text(v) for k, v in raw.items()} or None

    def undo(
        self,
        site_id: str,
        reset_id: str,
        periods: Sequence[Period],
        list_caps: tuple[int, int] = (10_000, 1_000),
    ) -> int:
        """Adds back what a reset moved aside (of the pages and referrers lists, the most viewed
        ``list_caps`` entries): 1 done, 0 done before, -1 no such reset, -2 refused because one
        of its periods has been closed since."""
        live = reset_keys(self._conn, site_id, periods)
        keys = [
            self._conn.keys.reset_record(site_id, reset_id),
            self._conn.keys.closed(site_id),
            *live,
            *self._aside(site_id, reset_id, live),
        ]
        args: list[str | int] = [*list_caps]
        args += [part for p in periods for part in (str(p.grain), p.name)]
        with self._conn.call("undo"):
            return int(self._undo(keys=keys, args=args))
