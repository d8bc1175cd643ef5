"""The visitor-id salts in Redis: one per local date, shared by every process, deleted once its
day has ended everywhere."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from enum import StrEnum

import redis
from redis.cluster import RedisCluster

from analytics.errors import AnalyticsError
from analytics.store.connection import Connection, RedisClient

log = logging.getLogger(__name__)

REWRITE_RUNNING = "already in progress"
"""What Redis answers BGREWRITEAOF while a rewrite runs: one that began before the salts were
deleted may still write them, so it is asked again later."""


class Rewrite(StrEnum):
    """What became of a request to rewrite Redis's append-only files."""

    STARTED = "started"
    """Started, or scheduled by Redis after a snapshot in progress."""
    BUSY = "busy"
    """A rewrite was running already: ask again later."""
    NO_AOF = "no_aof"
    """Redis keeps no append-only file: nothing to rewrite."""
    REFUSED = "refused"
    """Redis refused the command (an ACL, a renamed command): the operator's to run."""


def _rewrite_one(client: redis.Redis) -> Rewrite:
    try:
        if not int(client.info("persistence").get("aof_enabled", 0)):
            return Rewrite.NO_AOF
        client.bgrewriteaof()
    except redis.ResponseError as err:
        return Rewrite.BUSY if REWRITE_RUNNING in str(err) else Rewrite.REFUSED
    return Rewrite.STARTED


def _rewrite(client: RedisClient) -> Rewrite:
    """Rewrites the append-only file of every primary of ``client``; the least done wins."""
    if isinstance(client, RedisCluster):
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        results = [_rewrite_one(client.get_redis_connection(node)) for node in primaries]
    else:
        results = [_rewrite_one(client)]
    for worst in (Rewrite.REFUSED, Rewrite.BUSY, Rewrite.STARTED):
        if worst in results:
            return worst
    return Rewrite.NO_AOF


class SaltStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def salt(self, day: date, candidate: bytes, lifetime_seconds: int) -> bytes:
        """The shared salt of ``day``: ``candidate`` if none existed yet, else the stored one."""
        key = self._conn.keys.salt(day.isoformat())
        with self._conn.call("salt"):
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.set(key, candidate, nx=True, ex=lifetime_seconds)
            pipe.get(key)
            _, stored = pipe.execute()
        return bytes(stored)

    def delete_before(self, day: date, days: int = 7) -> int:
        """Deletes the salts of the ``days`` local dates before ``day``, so that their visitor ids
        can never be recomputed; returns how many there were. Older ones expired by themselves."""
        names = [
            self._conn.keys.salt((day - timedelta(days=n)).isoformat()) for n in range(1, days + 1)
        ]
        with self._conn.call("delete_salts"):
            pipe = self._conn.client.pipeline(transaction=False)
            for name in names:
                pipe.delete(name)
            return sum(int(n) for n in pipe.execute())

    def rewrite_files(self) -> Rewrite:
        """Asks Redis to rewrite its append-only file (BGREWRITEAOF), so that deleted salts leave
        the disk too: until then the file still holds the commands that set them. A Redis
        without an AOF is left alone (its next snapshot holds no deleted key)."""
        try:
            with self._conn.call("delete_salts"):
                result = _rewrite(self._conn.client)
        except AnalyticsError:  # Redis away (logged): the deletion stands, the rewrite waits
            return Rewrite.BUSY
        if result is Rewrite.STARTED:
            log.info(
                "Redis rewrites its append-only file, so that deleted salts leave the disk",
                extra={"event": "aof_rewrite", "result": str(result)},
            )
        elif result is Rewrite.REFUSED:
            log.warning(
                "Redis refused BGREWRITEAOF: deleted salts stay in its append-only file until it "
                "is rewritten; allow the command, or have Redis rewrite it",
                extra={"event": "aof_rewrite", "result": str(result)},
            )
        return result
