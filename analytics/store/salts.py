"""The visitor-id salts in Redis: one per local date, shared by every process, deleted once its
day has ended everywhere."""

from __future__ import annotations

from datetime import date, timedelta

from analytics.store.connection import Connection


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
