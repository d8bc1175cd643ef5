"""The store: every read and write of the service's data in Redis, one module per noun, all
sharing one connection and its one error wrapper (``connection.py``); every key is built in
``keys.py`` and every script is a file of ``lua/``. (``embedded.py`` also opens a client, only to
see whether the redis-server it started answers.)"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.store.audit import AuditStore
from analytics.store.connection import (
    OPERATIONS,
    Connection,
    DurationObserver,
    ErrorObserver,
    RedisClient,
    StoreError,
    connect,
)
from analytics.store.counts import (
    MAX_HITS_PER_CALL,
    CountStore,
    HitCall,
    HitLimits,
    HitWrite,
    WindowCounts,
)
from analytics.store.history import HistoryStore
from analytics.store.keys import KeySpace
from analytics.store.lists import ListStore
from analytics.store.locks import Locks
from analytics.store.resets import ResetStore
from analytics.store.salts import SaltStore
from analytics.store.sites import SiteStore
from analytics.store.weeks import WeekStore

__all__ = [
    "MAX_HITS_PER_CALL",
    "OPERATIONS",
    "AuditStore",
    "Connection",
    "CountStore",
    "HistoryStore",
    "HitCall",
    "HitLimits",
    "HitWrite",
    "KeySpace",
    "ListStore",
    "Locks",
    "RedisClient",
    "ResetStore",
    "SaltStore",
    "SiteStore",
    "Store",
    "StoreError",
    "WeekStore",
    "WindowCounts",
    "connect",
]


@dataclass(frozen=True)
class Store:
    """Every part of the store, over one connection."""

    conn: Connection
    counts: CountStore
    history: HistoryStore
    lists: ListStore
    salts: SaltStore
    sites: SiteStore
    resets: ResetStore
    audit: AuditStore
    locks: Locks
    weeks: WeekStore

    @classmethod
    def over(
        cls,
        client: RedisClient,
        keys: KeySpace | None = None,
        *,
        on_error: ErrorObserver | None = None,
        on_duration: DurationObserver | None = None,
    ) -> Store:
        conn = Connection(client, keys, on_error, on_duration)
        return cls(
            conn=conn,
            counts=CountStore(conn),
            history=HistoryStore(conn),
            lists=ListStore(conn),
            salts=SaltStore(conn),
            sites=SiteStore(conn),
            resets=ResetStore(conn),
            audit=AuditStore(conn),
            locks=Locks(conn),
            weeks=WeekStore(conn),
        )

    def ping(self) -> bool:
        return self.conn.ping()

    def takes_writes(self) -> bool:
        return self.conn.takes_writes()

    def close(self) -> None:
        self.conn.close()
