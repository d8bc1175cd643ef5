"""The connection to Redis: the client for a URL, the Lua scripts, and the one wrapper that times
every store operation and turns every driver error into the service's own."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel

from analytics.errors import AnalyticsError, SettingsError, StoreUnavailable
from analytics.store.keys import KeySpace

RedisClient = redis.Redis | RedisCluster
ErrorObserver = Callable[[str], None]
DurationObserver = Callable[[str, float], None]

log = logging.getLogger("analytics.store")

OPERATIONS = (
    "record_hit",
    "read_windows",
    "read_list",
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
    "import_days",
    "imported",
    "lock",
    "reset",
    "reset_record",
    "undo",
    "rebuild_weeks",
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
NOT_NOW = (
    "OOM command not allowed",
    "READONLY",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "NOREPLICAS",
    "MISCONF",
)
"""What a Redis that is up but does not take writes for now says, also from inside a script:
out of memory (``maxmemory`` with ``noeviction``), a replica after a failover, loading its
data, busy with a long script, unable to write its own disk. Each is an outage to wait out,
never a refusal of the request."""


def not_now(err: redis.RedisError) -> bool:
    """Whether ``err`` says Redis cannot take the operation now, but will later."""
    if isinstance(err, _UNAVAILABLE):
        return True
    return isinstance(err, redis.ResponseError) and any(marker in str(err) for marker in NOT_NOW)


class StoreError(AnalyticsError):
    """Redis answered with an error that is not an outage."""

    code = "store_error"


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
SENTINEL_FORM = "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/PRIMARY[/DB]"
"""The form of a Sentinel URL, as error messages name it (``rediss+sentinel://`` for TLS)."""

_SENTINEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class SentinelUrl:
    """A ``redis+sentinel://`` URL, parsed: the Sentinels to ask, and the primary they watch."""

    sentinels: tuple[tuple[str, int], ...]
    primary: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls: bool = False


def parse_sentinel_url(url: str) -> SentinelUrl:
    """``url`` parsed; ValueError, naming the expected form and never the password, if it is
    not a Sentinel URL of that form."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SENTINEL_SCHEMES:
        raise _malformed("it does not start with redis+sentinel:// or rediss+sentinel://")
    if "?" in rest or "#" in rest:
        raise _malformed("it takes no query string; write ? or # in a password as %3F or %23")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if not colon:
            raise _malformed("the credentials must be :PASSWORD or USER:PASSWORD before the @")
        username, password = unquote(user) or None, unquote(secret)
    sentinels = tuple(_sentinel_address(item) for item in hosts.split(","))
    parts = path.split("/") if path else []
    if not parts or not _SENTINEL_NAME.fullmatch(parts[0]):
        raise _malformed("it names no primary (the name the Sentinels monitor) after the hosts")
    db = 0
    if len(parts) == 2 and parts[1].isdigit() and parts[1].isascii():
        db = int(parts[1])
    elif len(parts) > 1 and parts[1:] != [""]:
        raise _malformed("after the primary's name comes at most /DB, a database number")
    return SentinelUrl(sentinels, parts[0], db, username, password, scheme.startswith("rediss"))


def _sentinel_address(item: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPV6]:PORT`` (the port 26379 when left out)."""
    if item.startswith("["):
        host, bracket, tail = item[1:].partition("]")
        if not bracket or tail[:1] not in ("", ":"):
            raise _malformed("a Sentinel's IPv6 address is written [ADDRESS]:PORT")
        has_port, port = bool(tail), tail[1:]
    else:
        host, colon, port = item.partition(":")
        has_port = bool(colon)
    if not host or any(c in host for c in " /@[]") or (":" in host and item[0] != "["):
        raise _malformed("the Sentinels are HOST:PORT, separated by commas")
    if not has_port:
        return host, SENTINEL_PORT
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise _malformed("a Sentinel's port is a number from 1 to 65535")
    return host, int(port)


def _malformed(why: str) -> ValueError:
    return ValueError(f"not a Sentinel URL ({why}); expected {SENTINEL_FORM}")


def connect(url: str, *, timeout: float = 2.0) -> RedisClient:
    """A client for ``url``; ``redis+cluster://`` and ``rediss+cluster://`` reach a Cluster,
    ``redis+sentinel://`` and ``rediss+sentinel://`` the primary that Sentinels name.

    A malformed Sentinel URL raises SettingsError, which names the expected form and never the
    password.
    """
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
    if url.startswith(tuple(f"{scheme}://" for scheme in SENTINEL_SCHEMES)):
        return _sentinel_client(url, retry, options)
    return redis.Redis.from_url(url, health_check_interval=30, retry=retry, **options)


def _sentinel_client(url: str, retry: Retry, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary that the Sentinels of ``url`` name, asked again after every
    failover. The password is the Redis servers': the Sentinels are reached without one (TLS
    for both with ``rediss+sentinel://``)."""
    try:
        parsed = parse_sentinel_url(url)
    except ValueError as err:
        raise SettingsError("ANALYTICS_REDIS_URL", str(err)) from None
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.sentinels),
        sentinel_kwargs={**options, "retry": retry, "ssl": parsed.tls},
    )
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        parsed.primary,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        ssl=parsed.tls,
        health_check_interval=30,
        retry=retry,
        **options,
    )
    return client


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
