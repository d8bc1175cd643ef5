"""Counting in Redis: one hit into every window of its site, the windows read back, the online
set trimmed. Each is one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis
from redis.cluster import RedisCluster
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
    """One hit as the hit script takes it (store/lua/hit.lua): what it shares with the other
    hits of its site, local day and kind, which one call passes once, and what is its own."""

    shared_keys: tuple[str, ...]
    """The online set, the site's settings, and the pairs of the periods it adds to."""
    shared_args: tuple[int, ...]
    """How many periods, then the site's limits."""
    own_keys: tuple[str, str, str]
    own_args: tuple[int, str, str]


MAX_HITS_PER_CALL = 64
"""Hits counted by one script call at most: Redis runs nothing else while a script runs."""


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
        return HitWrite(
            shared_keys=(k.online(site_id), k.site_config(site_id), *period_keys),
            shared_args=(
                len(period_keys) // 2,
                limits.session_timeout_ms,
                limits.online_keep_ms,
                limits.reload_ms,
                limits.per_visitor,
                limits.per_network,
            ),
            own_keys=(
                k.reload_guard(site_id, visitor, page),
                k.visitor_rate(site_id, visitor, minute),
                k.network_rate(site_id, network, minute),
            ),
            own_args=(now_ms, kind, visitor),
        )

    def record_hits(self, writes: Sequence[HitWrite]) -> list[str | AnalyticsError]:
        """Counts each hit atomically, in order, in one round trip: one script call for the hits
        that share a site, day and kind (up to ``MAX_HITS_PER_CALL``), the calls pipelined.
        Returns each hit's outcome, or the error of its call; raises when the batch as a whole
        failed."""
        calls: dict[tuple[tuple[str, ...], tuple[int, ...]], list[list[int]]] = {}
        for n, write in enumerate(writes):
            chunks = calls.setdefault((write.shared_keys, write.shared_args), [[]])
            if len(chunks[-1]) == MAX_HITS_PER_CALL:
                chunks.append([])
            chunks[-1].append(n)
        batches = [(shared, chunk) for shared, chunks in calls.items() for chunk in chunks]
        with self._conn.call("record_hit"):
            if len(batches) == 1 or isinstance(self._conn.client, RedisCluster):
                # A cluster pipeline refuses scripts: on a cluster each site's call goes alone
                # (one per site in the batch, each to the master of that site's slot).
                results: list[object] = []
                for shared, chunk in batches:
                    try:
                        results.append(self._call(shared, [writes[n] for n in chunk]))
                    except redis.ResponseError as err:  # that site's call alone failed
                        results.append(err)
            else:
                # EVALSHA itself, not the Script object: a pipeline holding scripts asks SCRIPT
                # EXISTS before every batch; a missing script is loaded below, once, instead.
                pipe = self._conn.client.pipeline(transaction=False)
                for shared, chunk in batches:
                    keys, args = self._arguments(shared, [writes[n] for n in chunk])
                    pipe.evalsha(self._hit.sha, len(keys), *keys, *args)
                results = pipe.execute(raise_on_error=False)
        outcomes: list[str | AnalyticsError] = [""] * len(writes)
        for (shared, chunk), result in zip(batches, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis restarted without its scripts
                with self._conn.call("record_hit"):
                    result = self._call(shared, [writes[n] for n in chunk])
            for position, n in enumerate(chunk):
                if isinstance(result, redis.RedisError):
                    outcomes[n] = self._conn.wrap("record_hit", result)
                else:
                    outcomes[n] = text(cast(list[bytes], result)[position])
        return outcomes

    @staticmethod
    def _arguments(
        shared: tuple[tuple[str, ...], tuple[int, ...]], writes: Sequence[HitWrite]
    ) -> tuple[list[str], list[str | int]]:
        keys: list[str] = list(shared[0])
        args: list[str | int] = list(shared[1])
        for write in writes:
            keys += write.own_keys
            args += write.own_args
        return keys, args

    def _call(
        self, shared: tuple[tuple[str, ...], tuple[int, ...]], writes: Sequence[HitWrite]
    ) -> object:
        keys, args = self._arguments(shared, writes)
        return self._hit(keys=keys, args=args)

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
