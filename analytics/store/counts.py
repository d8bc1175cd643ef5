"""Counting in Redis: one hit into every window of its site, the windows read back, the online
set trimmed. Each is one round trip."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError
from redis.sentinel import SentinelConnectionPool

from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.periods import Period
from analytics.store.connection import Connection, text


@dataclass(frozen=True)
class HitLimits:
    """What the hit script needs of a site and the service's policy: times in milliseconds,
    the limits' window in minutes, and what one network may add to the site within it."""

    session_timeout_ms: int
    online_keep_ms: int
    reload_ms: int
    window_minutes: int = 10
    new_visitors: int = 60
    visits: int = 60
    pageviews: int = 600
    heartbeats: int = 600
    online_window_ms: int = 300_000
    """The site's online window: a network keeps at most ``new_visitors`` online in it."""
    max_pages: int = 10_000
    """Pages a period's list keeps at most (Space-Saving past that)."""
    max_referrers: int = 1_000
    """Referrer hosts a period's list keeps at most."""

    def args(self) -> tuple[int, ...]:
        """In the order of the hit script's ARGV[2..10]."""
        return (
            self.session_timeout_ms,
            self.online_keep_ms,
            self.reload_ms,
            self.window_minutes,
            self.new_visitors,
            self.visits,
            self.pageviews,
            self.heartbeats,
            self.online_window_ms,
        )


@dataclass(frozen=True)
class HitWrite:
    """One hit as the hit script takes it (store/lua/hit.lua), before it joins a call."""

    site_id: str
    limits: HitLimits
    period_keys: tuple[str, ...]
    """The keys of the periods it adds to (none for a heartbeat), as ``CountStore.period_keys``
    gives them: their (counts, visitors) pairs, then their (pages, referrers, page errors)
    triples."""
    own_keys: tuple[str, str, str, str]
    """Its reload guard; its network's limits hash, and the one of the day before (the same
    past the first minutes of a day); its network's online visitors."""
    now_ms: int
    kind: str
    visitor: str
    path: str = "/"
    """The page's path, counted in the periods' pages lists."""
    referrer: str = ""
    """The referrer's host, counted in the referrers lists; "" for none."""


@dataclass(frozen=True)
class HitCall:
    """One call of the hit script: hits of one site, numbered in the sequence of the writer that
    sends them, so that the call counts once however often it is sent."""

    site_id: str
    writer: str
    seq: int
    hits: int
    first_ms: int
    """When its first hit arrived (ms since the epoch)."""
    keys: tuple[str, ...]
    args: tuple[str | int, ...]


MAX_HITS_PER_CALL = 256
"""Hits counted by one script call at most (a few milliseconds of Redis): Redis runs nothing
else while a script runs."""
REPLICA_WAIT_MS = 500
"""How long a batch written through Sentinel waits for a replica to confirm it."""
HIT_LAYOUT = "hit/3"
"""The layout of the hit script's keys and arguments: a call carries it, and the script refuses
any other whole, before writing anything."""
MARK_DAYS = 30
"""How long Redis remembers the last call of a writer for a site: longer than a spool waits."""


@dataclass(frozen=True)
class WindowCounts:
    pageviews: int
    visits: int
    visitors: int


def list_keys(conn: Connection, site_id: str, periods: Sequence[Period]) -> list[str]:
    """The (pages, referrers, page errors) triple of each period, flattened, in order."""
    k = conn.keys
    return [
        key
        for p in periods
        for key in (k.pages(site_id, p), k.referrers(site_id, p), k.page_errors(site_id, p))
    ]


def period_keys(conn: Connection, site_id: str, periods: Sequence[Period]) -> list[str]:
    """The (counts hash, visitors HyperLogLog) pair of each period, flattened, in order."""
    keys: list[str] = []
    for period in periods:
        keys += [conn.keys.counts(site_id, period), conn.keys.visitors(site_id, period)]
    return keys


class CountStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # Behind Sentinel, a batch is acknowledged once a replica has it too.
        self._replicated = isinstance(conn.client, redis.Redis) and isinstance(
            conn.client.connection_pool, SentinelConnectionPool
        )
        self._hit = conn.script("hit")
        self._read = conn.script("read")

    def period_keys(self, site_id: str, periods: Sequence[Period]) -> tuple[str, ...]:
        """What a pageview in ``periods`` adds to: the (counts, visitors) pair of each period,
        then the (pages, referrers, page errors) triple of each, in the same order."""
        return (
            *period_keys(self._conn, site_id, periods),
            *list_keys(self._conn, site_id, periods),
        )

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
        network_before: str | None = None,
        path: str = "/",
        referrer: str = "",
    ) -> HitWrite:
        """One hit for the hit script: counted in the periods of ``period_keys`` (as
        ``period_keys()`` gives them), under the limits of its site; ``network_before`` is the
        network's id under the day before's salt, in the first minutes of a day. A pageview
        also counts for its page ``path`` and its ``referrer`` host (none when "")."""
        k = self._conn.keys
        limits_key = k.network_limits(site_id, network)
        return HitWrite(
            site_id=site_id,
            limits=limits,
            period_keys=tuple(period_keys),
            own_keys=(
                k.reload_guard(site_id, visitor, page),
                limits_key,
                limits_key if network_before is None else k.network_limits(site_id, network_before),
                k.network_online(site_id, network),
            ),
            now_ms=now_ms,
            kind=kind,
            visitor=visitor,
            path=path,
            referrer=referrer,
        )

    def current_layout(self, call: HitCall) -> HitCall:
        """``call`` in this version's layout of the hit script. A call spooled by a version
        before the pages lists (five arguments a hit, no lists' keys) gets its periods' lists
        and an empty page and referrer for each hit, which the script counts in no list."""
        old_args = 12 + 5 * call.hits
        if not call.args or len(call.args) != old_args:
            return call
        pair_keys = int(call.args[0])
        if len(call.keys) != 3 + pair_keys + 4 * call.hits:
            return call
        lists: list[str] = []
        for counts in call.keys[3 : 3 + pair_keys : 2]:
            beside = self._conn.keys.lists_beside(counts)
            if beside is None:
                return call
            lists += beside
        args: list[str | int] = [*call.args[:12], 10_000, 1_000, HIT_LAYOUT]
        for n in range(call.hits):
            args += [*call.args[12 + 5 * n : 17 + 5 * n], "", ""]
        keys = (*call.keys[: 3 + pair_keys], *lists, *call.keys[3 + pair_keys :])
        return replace(call, keys=keys, args=tuple(args))

    def calls(
        self, writes: Sequence[HitWrite], writer: str, next_seq: Callable[[], int]
    ) -> list[tuple[HitCall, list[int]]]:
        """The script calls that count ``writes``: one per site (per ``MAX_HITS_PER_CALL`` hits),
        in the order the sites first appear, each numbered by ``next_seq``; with each call, the
        positions in ``writes`` of the hits it holds."""
        by_site: dict[str, list[list[int]]] = {}
        for n, write in enumerate(writes):
            chunks = by_site.setdefault(write.site_id, [[]])
            if len(chunks[-1]) == MAX_HITS_PER_CALL:
                chunks.append([])
            chunks[-1].append(n)
        return [
            (self._call_of(site_id, [writes[n] for n in chunk], writer, next_seq()), chunk)
            for site_id, chunks in by_site.items()
            for chunk in chunks
        ]

    def _call_of(self, site_id: str, writes: Sequence[HitWrite], writer: str, seq: int) -> HitCall:
        k = self._conn.keys
        pairs: dict[tuple[str, ...], int] = {}
        period_keys: list[str] = []
        lists: list[str] = []
        for write in writes:
            if write.period_keys and write.period_keys not in pairs:
                pairs[write.period_keys] = len(period_keys) // 2
                split = 2 * len(write.period_keys) // 5
                period_keys += write.period_keys[:split]
                lists += write.period_keys[split:]
        keys = [k.online(site_id), k.site_config(site_id), k.writer_mark(site_id, writer)]
        keys += period_keys + lists
        limits = writes[0].limits
        args: list[str | int] = [
            len(period_keys),
            *limits.args(),
            seq,
            MARK_DAYS * 86_400_000,
            limits.max_pages,
            limits.max_referrers,
            HIT_LAYOUT,
        ]
        for write in writes:
            keys += write.own_keys
            first = pairs.get(write.period_keys, 0)
            args += [
                write.now_ms,
                write.kind,
                write.visitor,
                first,
                len(write.period_keys) // 5,
                write.path,
                write.referrer,
            ]
        return HitCall(
            site_id=site_id,
            writer=writer,
            seq=seq,
            hits=len(writes),
            first_ms=min(write.now_ms for write in writes),
            keys=tuple(keys),
            args=tuple(args),
        )

    def send(self, calls: Sequence[HitCall]) -> list[list[str] | AnalyticsError]:
        """Sends ``calls`` in order and answers, for each, the outcomes of its hits or its error:
        StoreUnavailable where Redis could not take it now (the call may have been counted when
        the connection broke under it; sent again, it counts nothing twice), StoreError where
        Redis refused it.

        Calls of different sites go in one pipeline (one round trip); a site's next call waits
        for the one before, and is not sent when that one failed, so that a site's mark only
        rises past calls it counted. A round that cannot be sent leaves it and every later
        call to StoreUnavailable."""
        results: dict[int, list[str] | AnalyticsError] = {}
        by_site: dict[str, deque[int]] = {}
        for n, call in enumerate(calls):
            by_site.setdefault(call.site_id, deque()).append(n)
        while by_site:
            round_ = [queued.popleft() for queued in by_site.values()]
            try:
                with self._conn.call("record_hit"):
                    replies = self._send_round([calls[n] for n in round_])
            except StoreUnavailable as err:
                for n in [*round_, *(n for queued in by_site.values() for n in queued)]:
                    results[n] = err
                break
            for n, reply in zip(round_, replies, strict=True):
                results[n] = reply
                site_id = calls[n].site_id
                if isinstance(reply, AnalyticsError):
                    # Its later calls wait for it: not sent, so its mark cannot pass it.
                    for later in by_site.pop(site_id):
                        results[later] = StoreUnavailable()
                elif not by_site[site_id]:
                    del by_site[site_id]
        return [results[n] for n in range(len(calls))]

    def _send_round(self, calls: Sequence[HitCall]) -> list[list[str] | AnalyticsError]:
        waited: object = None
        if isinstance(self._conn.client, RedisCluster) or (
            len(calls) == 1 and not self._replicated
        ):
            # A cluster pipeline refuses scripts: on a cluster each site's call goes alone (to
            # the master of that site's slot).
            replies: list[object] = []
            for call in calls:
                try:
                    replies.append(self._hit(keys=call.keys, args=call.args))
                except redis.ResponseError as err:  # that site's call alone failed
                    replies.append(err)
        else:
            # EVALSHA itself, not the Script object: a pipeline holding scripts asks SCRIPT
            # EXISTS before every batch; a missing script is loaded below, once, instead.
            pipe = self._conn.client.pipeline(transaction=False)
            for call in calls:
                pipe.evalsha(self._hit.sha, len(call.keys), *call.keys, *call.args)
            if self._replicated:
                # On the connection that wrote: WAIT counts the replicas that have its writes.
                pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)  # type: ignore[no-untyped-call]
            replies = pipe.execute(raise_on_error=False)
            if self._replicated:
                waited = replies.pop()
        results: list[list[str] | AnalyticsError] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):  # Redis restarted without its scripts
                if self._replicated:
                    # Run now, it would be on a connection of its own, which WAIT does not
                    # cover: loaded, and sent again later (from the spool).
                    self._conn.client.script_load(self._hit.script)
                    results.append(StoreUnavailable())
                    continue
                try:
                    reply = self._hit(keys=call.keys, args=call.args)
                except redis.ResponseError as err:
                    reply = err
            if isinstance(reply, redis.RedisError):
                results.append(self._conn.wrap("record_hit", reply))
            else:
                results.append([text(outcome) for outcome in cast(list[bytes], reply)])
        counted = not all(isinstance(r, AnalyticsError) for r in results)
        if self._replicated and counted and not self._on_a_replica(waited):
            # Counted on a primary that a failover may throw away: not acknowledged. Sent
            # again (from the spool) once a primary replicates, it counts once.
            return [StoreUnavailable() for _ in results]
        return results

    def _on_a_replica(self, waited: object) -> bool:
        """Whether the writes of the round reached a replica (``waited``, WAIT's answer on their
        connection), or there is none a failover could promote: Sentinel still names this
        primary and knows no live replica. A primary the Sentinels replaced keeps taking
        writes until they demote it, and a replica promoted away from it never sees them."""
        if isinstance(waited, int) and waited >= 1:
            return True
        pool = cast(SentinelConnectionPool, cast(redis.Redis, self._conn.client).connection_pool)
        written_to = pool.master_address
        # Asking also drops idle connections to a primary the Sentinels no longer name.
        if pool.get_master_address() != written_to:  # type: ignore[no-untyped-call]
            return False
        return not pool.sentinel_manager.discover_slaves(pool.service_name)

    def read_windows(
        self,
        site_id: str,
        windows: Sequence[Period],
        online_since_ms: int,
        imported: Sequence[Sequence[str] | None] | None = None,
    ) -> tuple[int, list[WindowCounts]]:
        """The online count and the counts of each window, in one atomic round trip.

        With ``imported`` (one entry per window: the dates it covers, or None for the total),
        the imported days each window covers are added to it, and the imported sums to the
        total."""
        k = self._conn.keys
        keys = [k.online(site_id), *period_keys(self._conn, site_id, windows)]
        args: list[str | int] = [online_since_ms]
        if imported is not None:
            keys += [k.imported_days(site_id), k.imported_total(site_id)]
            for days in imported:
                args += ["t"] if days is None else [len(days), *days]
        with self._conn.call("read_windows"):
            raw = self._read(keys=keys, args=args)
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
