"""The connection to Redis: the client for a URL, the Lua scripts, and the one wrapper that times
every store operation and turns every driver error into the service's own."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.store.keys import KeySpace

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
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
)
NOT_NOW = ("OOM command not allowed", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS")
"""What a Redis that is up but does not take writes for now says, also from inside a script:
out of memory (``maxmemory`` with ``noeviction``), a replica after a failover, loading its
data, busy with a long script. Each is an outage to wait out, never a refusal of the request."""


def not_now(err: redis.RedisError) -> bool:
    """Whether ``err`` says Redis cannot take the operation now, but will later."""
    if isinstance(err, _UNAVAILABLE):
        return True
    return isinstance(err, redis.ResponseError) and any(marker in str(err) for marker in NOT_NOW)


class StoreError(AnalyticsError):
    """Redis answered with an error that is not an outage."""

    code = "store_error"


def connect(url: str, *, timeout: float = 2.0) -> RedisClient:
    """A client for ``url``; ``redis+cluster://`` and ``rediss+cluster://`` reach a Cluster."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # CLIENT LIST names each process of the service: which are connected, and from where.
        "client_name": f"visit-analytics-{os.getpid()}",
    }
    # One quick retry covers a dropped connection; a Redis that is down must fail fast, not
    # hold a beacon for seconds of backoff.
    retry = Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    return redis.Redis.from_url(url, health_check_interval=30, retry=retry, **options)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Connection:
    """One Redis client shared by every part of the store, with its key space and observers."""

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

    def script(self, name: str) -> Script:
        """The Lua script ``lua/<name>.lua``, registered once with this client."""
        source = resources.files(__package__).joinpath("lua", f"{name}.lua").read_text("utf-8")
        return self.client.register_script(source)

    @contextmanager
    def call(self, operation: str) -> Iterator[None]:
        """Times one store operation and wraps every driver error once, here, into the service's
        own errors: StoreUnavailable for an outage, StoreError for a refusal."""
        started = time.perf_counter()
        try:
            yield
        except redis.RedisError as err:
            raise self.wrap(operation, err) from err
        finally:
            if self._on_duration is not None:
                self._on_duration(operation, time.perf_counter() - started)

    def wrap(self, operation: str, err: redis.RedisError) -> AnalyticsError:
        """The service's error for a driver error, counted and logged: StoreUnavailable for an
        outage, StoreError for a refusal."""
        if self._on_error is not None:
            self._on_error(operation)
        log.warning(
            "redis error",
            extra={
                "event": "redis_error",
                "operation": operation,
                "error": type(err).__name__,
                "detail": str(err)[:200],
            },
        )
        if not_now(err):
            return StoreUnavailable()
        return StoreError("the counters store (Redis) refused the operation")

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            if self._on_error is not None:
                self._on_error("ping")
            return False

    def takes_writes(self) -> bool:
        """Whether Redis takes a write now: a short-lived key set, which a Redis that is down,
        out of memory or read-only refuses (a PING would still answer)."""
        try:
            return bool(self.client.set(self.keys.ready_probe(), "1", px=10_000))
        except redis.RedisError as err:
            if self._on_error is not None:
                self._on_error("ping")
            log.warning(
                "redis takes no writes",
                extra={"event": "redis_error", "operation": "ping", "error": type(err).__name__},
            )
            return False

    def close(self) -> None:
        self.client.close()
