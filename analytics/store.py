"""CounterStore: the only module that talks to Redis. One round trip per hit and per read."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from analytics.counter import HitLimits, WindowCounts
from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.keys import KeySpace
from analytics.periods import Period

RedisClient = redis.Redis | RedisCluster
ErrorObserver = Callable[[str], None]
DurationObserver = Callable[[str, float], None]

log = logging.getLogger("analytics.store")

OPERATIONS = (
    "record_hit",
    "read_windows",
    "salt",
    "load_site",
    "save_site",
    "site_ids",
    "delete_site",
    "last_closed",
    "close_period",
    "trim_online",
    "delete_salts",
    "frozen",
    "lock",
    "reset",
    "reset_record",
    "undo",
    "audit",
    "audit_entries",
    "auth_failure",
    "ping",
)
"""Every store operation, as named in metrics and logs (a bounded label)."""

_UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)


class StoreError(AnalyticsError):
    """Redis answered with an error that is not an outage."""

    code = "store_error"


def connect(url: str, *, timeout: float = 2.0) -> RedisClient:
    """A client for ``url``; ``redis+cluster://`` and ``rediss+cluster://`` reach a Cluster."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    # One quick retry covers a dropped connection; a Redis that is down must fail fast, not
    # hold a beacon for seconds of backoff.
    retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    return redis.Redis.from_url(url, health_check_interval=30, retry=retry, **options)


def _script(client: RedisClient, name: str) -> Script:
    source = resources.files("analytics").joinpath("lua", f"{name}.lua").read_text("utf-8")
    return client.register_script(source)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CounterStore:
    def __init__(
        self,
        client: RedisClient,
        keys: KeySpace | None = None,
        on_error: ErrorObserver | None = None,
        on_duration: DurationObserver | None = None,
    ) -> None:
        self.client = client
        self.keys = keys or KeySpace()
        self._on_error = on_error
        self._on_duration = on_duration
        self._hit = _script(client, "hit")
        self._read = _script(client, "read")
        self._close = _script(client, "close")
        self._reset = _script(client, "reset")
        self._undo = _script(client, "undo")

    @contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        """Times every store operation, and wraps every driver error once, here, into the
        service's own errors."""
        started = time.perf_counter()
        try:
            yield
        except redis.RedisError as err:
            if self._on_error is not None:
                self._on_error(operation)
            log.warning(
                "redis error",
                extra={"event": "redis_error", "operation": operation, "error": type(err).__name__},
            )
            if isinstance(err, _UNAVAILABLE):
                raise StoreUnavailable(f"Redis is unavailable ({operation})") from err
            raise StoreError(f"Redis refused {operation}: {err}") from err
        finally:
            if self._on_duration is not None:
                self._on_duration(operation, time.perf_counter() - started)

    # -- counting ---------------------------------------------------------------

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
        k = self.keys
        minute = now_ms // 60_000
        keys = [
            k.online(site_id),
            k.reload_guard(site_id, visitor, page),
            k.visitor_rate(site_id, visitor, minute),
            k.network_rate(site_id, network, minute),
            k.site_config(site_id),
        ]
        for period in periods:
            keys += [k.counts(site_id, period), k.visitors(site_id, period)]
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
        with self._call("record_hit"):
            outcome = self._hit(keys=keys, args=args)
        return outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    def read_windows(
        self, site_id: str, windows: Sequence[Period], online_since_ms: int
    ) -> tuple[int, list[WindowCounts]]:
        """The online count and the counts of each window, in one atomic round trip."""
        k = self.keys
        keys = [k.online(site_id)]
        for period in windows:
            keys += [k.counts(site_id, period), k.visitors(site_id, period)]
        with self._call("read_windows"):
            raw = self._read(keys=keys, args=[online_since_ms])
        values = [int(v) for v in raw]
        counts = [WindowCounts(*values[i : i + 3]) for i in range(1, len(values), 3)]
        return values[0], counts

    # -- housekeeping -----------------------------------------------------------

    def last_closed(self, site_id: str) -> dict[str, str]:
        """Per grain (``d``, ``w``, ``m``) the last period closed, and ``<grain>:closes``."""
        with self._call("last_closed"):
            raw = self.client.hgetall(self.keys.closed(site_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def close_period(self, site_id: str, period: Period, expired: Period) -> bool:
        """Freezes ``period`` into the history once, and drops ``expired``; True if it closed."""
        k = self.keys
        keys = [
            k.closed(site_id),
            k.counts(site_id, period),
            k.visitors(site_id, period),
            k.history(site_id, period),
            k.counts(site_id, expired),
            k.visitors(site_id, expired),
        ]
        with self._call("close_period"):
            return bool(self._close(keys=keys, args=[str(period.grain), period.name, expired.name]))

    def trim_online(self, site_id: str, before_ms: int) -> int:
        """Forgets visitors last seen before ``before_ms``; returns how many."""
        with self._call("trim_online"):
            removed = self.client.zremrangebyscore(
                self.keys.online(site_id), "-inf", f"({before_ms}"
            )
        return int(removed)

    def delete_salts_before(self, day: date, days: int = 7) -> int:
        """Deletes the salts of the ``days`` local dates before ``day``, so that their visitor ids
        can never be recomputed; returns how many there were. Older ones expired by themselves."""
        names = [self.keys.salt((day - timedelta(days=n)).isoformat()) for n in range(1, days + 1)]
        with self._call("delete_salts"):
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.delete(name)
            return sum(int(n) for n in pipe.execute())

    def frozen(self, site_id: str, periods: Sequence[Period]) -> dict[Period, WindowCounts]:
        """The frozen counts of those ``periods`` that were closed with any traffic."""
        by_key: dict[str, list[Period]] = {}
        for period in periods:
            by_key.setdefault(self.keys.history(site_id, period), []).append(period)
        with self._call("frozen"):
            pipe = self.client.pipeline(transaction=False)
            for key, members in by_key.items():
                pipe.hmget(key, [p.name for p in members])
            answers = pipe.execute()
        found: dict[Period, WindowCounts] = {}
        for members, values in zip(by_key.values(), answers, strict=True):
            for period, value in zip(members, values, strict=True):
                if value is not None:
                    pageviews, visits, visitors = (int(x) for x in _text(value).split())
                    found[period] = WindowCounts(pageviews, visits, visitors)
        return found

    @contextmanager
    def exclusive(self, job: str, ttl_seconds: float) -> Iterator[bool]:
        """Holds the lock of ``job`` across every process and host while the block runs.

        Yields False, running nothing exclusive, when another holder has it. The lock has an
        owner token and expires after ``ttl_seconds`` if its holder dies; a thread renews it
        while the block runs, so a long job keeps it.
        """
        with self._call("lock"):
            lock = self.client.lock(
                self.keys.lock(job), timeout=ttl_seconds, blocking=False, thread_local=False
            )
            acquired = lock.acquire()
        if not acquired:
            yield False
            return
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(ttl_seconds / 3):
                try:
                    lock.reacquire()
                except redis.RedisError:
                    return

        renewer = threading.Thread(target=renew, name=f"lock-{job}", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join()
            with contextlib.suppress(redis.RedisError):
                lock.release()

    # -- salts ----------------------------------------------------------------

    def salt(self, day: date, candidate: bytes, lifetime_seconds: int) -> bytes:
        """The shared salt of ``day``: ``candidate`` if none existed yet, else the stored one."""
        key = self.keys.salt(day.isoformat())
        with self._call("salt"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, candidate, nx=True, ex=lifetime_seconds)
            pipe.get(key)
            _, stored = pipe.execute()
        return bytes(stored)

    # -- sites ------------------------------------------------------------------

    def load_site(self, site_id: str) -> dict[str, Any] | None:
        with self._call("load_site"):
            raw = self.client.get(self.keys.site_config(site_id))
        return None if raw is None else dict(json.loads(raw))

    def save_site(self, site: dict[str, Any]) -> None:
        site_id = site["id"]
        with self._call("save_site"):
            self.client.set(self.keys.site_config(site_id), json.dumps(site, ensure_ascii=False))
            self.client.sadd(self.keys.sites_index(), site_id)

    def site_ids(self) -> list[str]:
        with self._call("site_ids"):
            members = self.client.smembers(self.keys.sites_index())
        return sorted(_text(m) for m in members)

    def delete_site(self, site_id: str) -> int:
        """Deletes every key of a site (found with SCAN over its hash tag); returns how many."""
        deleted = 0
        with self._call("delete_site"):
            batch: list[bytes | str] = []
            for key in self.client.scan_iter(match=self.keys.site_pattern(site_id), count=500):
                batch.append(key)
                if len(batch) == 500:
                    deleted += int(self.client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(self.client.delete(*batch))
            self.client.srem(self.keys.sites_index(), site_id)
        return deleted

    def _period_keys(self, site_id: str, periods: Sequence[Period]) -> list[str]:
        keys: list[str] = []
        for period in periods:
            keys += [self.keys.counts(site_id, period), self.keys.visitors(site_id, period)]
        return keys

    def reset(
        self,
        site_id: str,
        reset_id: str,
        periods: Sequence[Period],
        record: dict[str, str],
        keep_seconds: int,
    ) -> int:
        """Moves the keys of ``periods`` aside under ``reset_id``; returns how many moved."""
        live = self._period_keys(site_id, periods)
        aside = [self.keys.set_aside(site_id, reset_id, k) for k in live]
        args: list[str | int] = [keep_seconds]
        for field, value in record.items():
            args += [field, value]
        keys = [self.keys.reset_record(site_id, reset_id), *live, *aside]
        with self._call("reset"):
            return int(self._reset(keys=keys, args=args))

    def reset_record(self, site_id: str, reset_id: str) -> dict[str, str] | None:
        with self._call("reset_record"):
            raw = self.client.hgetall(self.keys.reset_record(site_id, reset_id))
        return {_text(k): _text(v) for k, v in raw.items()} or None

    def undo(self, site_id: str, reset_id: str, periods: Sequence[Period]) -> int:
        """Adds back what a reset moved aside: 1 done, 0 done before, -1 no such reset,
        -2 refused because one of its periods has been closed since."""
        live = self._period_keys(site_id, periods)
        aside = [self.keys.set_aside(site_id, reset_id, k) for k in live]
        keys = [self.keys.reset_record(site_id, reset_id), self.keys.closed(site_id), *live, *aside]
        args = [part for p in periods for part in (str(p.grain), p.name)]
        with self._call("undo"):
            return int(self._undo(keys=keys, args=args))

    # -- audit ------------------------------------------------------------------

    def audit(self, entry: dict[str, str], max_entries: int, *, failed_auth: bool = False) -> None:
        """Appends to the admin actions' stream, or to the failed authentications' one."""
        stream = self.keys.auth_audit() if failed_auth else self.keys.audit()
        with self._call("audit"):
            fields: dict[Any, Any] = dict(entry)
            self.client.xadd(stream, fields, maxlen=max_entries, approximate=True)

    def audit_entries(self, count: int) -> list[dict[str, str]]:
        """The newest ``count`` entries of both audit streams, newest first."""
        with self._call("audit_entries"):
            pipe = self.client.pipeline(transaction=False)
            pipe.xrevrange(self.keys.audit(), count=count)
            pipe.xrevrange(self.keys.auth_audit(), count=count)
            actions, failures = pipe.execute()
        rows = [*(actions or []), *(failures or [])]

        def stream_id(row: Any) -> tuple[int, int]:
            millis, _, seq = _text(row[0]).partition("-")
            return int(millis), int(seq or 0)

        rows.sort(key=stream_id, reverse=True)
        return [
            {_text(k): _text(v) for k, v in (fields or {}).items()} for _, fields in rows[:count]
        ]

    def count_auth_failure(self, network: str, minute: int) -> int:
        """Counts one failed authentication of ``network`` in ``minute``; returns the count."""
        key = self.keys.auth_failures(network, minute)
        with self._call("auth_failure"):
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = pipe.execute()
        return int(count)

    def auth_failures(self, network: str, minute: int) -> int:
        with self._call("auth_failure"):
            return int(self.client.get(self.keys.auth_failures(network, minute)) or 0)

    # -- operations -------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            if self._on_error is not None:
                self._on_error("ping")
            return False

    def close(self) -> None:
        self.client.close()
