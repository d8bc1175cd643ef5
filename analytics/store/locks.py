"""Locks in Redis: a job held by one process across every process and host, renewed while it
runs, expiring if its holder dies."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from analytics.store.connection import Connection


class Locks:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @contextmanager
    def exclusive(self, job: str, ttl_seconds: float) -> Iterator[bool]:
        """Holds the lock of ``job`` across every process and host while the block runs.

        Yields False, running nothing exclusive, when another holder has it. The lock has an
        owner token and expires after ``ttl_seconds`` if its holder dies; a thread renews it
        while the block runs, so a long job keeps it.
        """
        with self._conn.call("lock"):
            lock = self._conn.client.lock(
                self._conn.keys.lock(job), timeout=ttl_seconds, blocking=False, thread_local=False
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
