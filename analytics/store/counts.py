"""Counting in Redis: one hit into every window of its site, the windows read back, the online
set trimmed. Each is one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.exceptions import NoScriptError

from analytics.errors import AnalyticsError
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
class HitWrite:
    """One hit as the hit script takes it (store/lua/hit.lua): its keys and its arguments."""

    keys: Sequence[str]
    args: Sequence[str | int]


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

    def period_keys(self, site_id: str, periods: Sequence[Period]) -> tuple[str, ...]:
        return tuple(period_keys(self._conn, site_id, periods))

    def hit_write(
        self,
        site_id: str,
        period_keys: Sequence[str],
        *,
        kind: str,
        visitor: str,
        network: str,
        page: str,
        now_ms: int,
        limits: HitLimits,
    ) -> HitWrite:
        """One hit for the hit script: counted in the periods of ``period_keys`` (the pairs of
        ``period_keys()``), under the limits of its site."""
        k = self._conn.keys
        minute = now_ms // 60_000
        keys = (
            k.online(site_id),
            k.reload_guard(site_id, visitor, page),
            k.visitor_rate(site_id, visitor, minute),
            k.network_rate(site_id, network, minute),
            k.site_config(site_id),
            *period_keys,
        )
        args = (
            now_ms,
            kind,
            visitor,
            limits.session_timeout_ms,
            limits.online_keep_ms,
            limits.reload_ms,
            limits.per_visitor,
            limits.per_network,
        )
        return HitWrite(keys, args)

    def record_hits(self, writes: Sequence[HitWrite]) -> list[str | AnalyticsError]:
        """Counts each hit atomically, all in one pipelined round trip; returns each script's
        outcome, or the error of that hit alone. Raises when the batch as a whole failed."""
        if len(writes) == 1:
            with self._conn.call("record_hit"):
                return [text(self._hit(keys=writes[0].keys, args=writes[0].args))]
        with self._conn.call("record_hit"):
            # EVALSHA itself, not the Script object: a pipeline holding scripts asks SCRIPT
            # EXISTS before every batch; a missing script is loaded below, once, instead.
            pipe = self._conn.client.pipeline(transaction=False)
            for write in writes:
                pipe.evalsha(self._hit.sha, len(write.keys), *write.keys, *write.args)
            results = pipe.execute(raise_on_error=False)
        outcomes: list[str | AnalyticsError] = []
        for write, result in zip(writes, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis restarted without its scripts
                with self._conn.call("record_hit"):
                    result = self._hit(keys=write.keys, args=write.args)
            if isinstance(result, redis.RedisError):
                outcomes.append(self._conn.wrap("record_hit", result))
            else:
                outcomes.append(text(result))
        return outcomes

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
