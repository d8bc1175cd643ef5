"""Counting in Redis: one hit into every window of its site, the windows read back, the online
set trimmed. Each is one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analytics.periods import Period
from analytics.store.connection import Connection, text


@dataclass(frozen=True)
class HitLimits:
    """What the hit script needs of a site and the service's policy, in milliseconds and hits."""

    session_timeout_ms: int
    online_keep_ms: int
    reload_ms: int
    per_visitor: int
    per_network: int


@dataclass(frozen=True)
class WindowCounts:
    pageviews: int
    visits: int
    visitors: int


def period_keys(conn: Connection, site_id: str, periods: Sequence[Period]) -> list[str]:
    """The (counts hash, visitors HyperLogLog) pair of each period, flattened, in order."""
    keys: list[str] = []
    for period in periods:
        keys += [conn.keys.counts(site_id, period), conn.keys.visitors(site_id, period)]
    return keys


class CountStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._hit = conn.script("hit")
        self._read = conn.script("read")

    def record_hit(
        self,
        site_id: str,
        periods: Sequence[Period],
        *,
        kind: str,
        visitor: str,
        network: str,
        page: str,
        now_ms: int,
        limits: HitLimits,
    ) -> str:
        """Counts one hit in every period atomically; returns the script's outcome."""
        k = self._conn.keys
        minute = now_ms // 60_000
        keys = [
            k.online(site_id),
            k.reload_guard(site_id, visitor, page),
            k.visitor_rate(site_id, visitor, minute),
            k.network_rate(site_id, network, minute),
            k.site_config(site_id),
            *period_keys(self._conn, site_id, periods),
        ]
        args: list[str | int] = [
            now_ms,
            kind,
            visitor,
            limits.session_timeout_ms,
            limits.online_keep_ms,
            limits.reload_ms,
            limits.per_visitor,
            limits.per_network,
        ]
        with self._conn.call("record_hit"):
            outcome = self._hit(keys=keys, args=args)
        return text(outcome)

    def read_windows(
        self, site_id: str, windows: Sequence[Period], online_since_ms: int
    ) -> tuple[int, list[WindowCounts]]:
        """The online count and the counts of each window, in one atomic round trip."""
        keys = [self._conn.keys.online(site_id), *period_keys(self._conn, site_id, windows)]
        with self._conn.call("read_windows"):
            raw = self._read(keys=keys, args=[online_since_ms])
        values = [int(v) for v in raw]
        counts = [WindowCounts(*values[i : i + 3]) for i in range(1, len(values), 3)]
        return values[0], counts

    def trim_online(self, site_id: str, before_ms: int) -> int:
        """Forgets visitors last seen before ``before_ms``; returns how many."""
        with self._conn.call("trim_online"):
            removed = self._conn.client.zremrangebyscore(
                self._conn.keys.online(site_id), "-inf", f"({before_ms}"
            )
        return int(removed)
