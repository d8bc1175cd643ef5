"""The hit writer: hits from many request threads go to Redis together, one pipelined write per
batch, and each request waits for its own outcome (a group commit)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.store import CountStore, HitWrite

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Hits written in one pipeline at most; a longer queue is written in several."""
WAIT_SECONDS = 30.0
"""How long a request waits for its batch: longer than any Redis timeout, so it never fires
unless the writer itself is stuck."""


@dataclass
class _Pending:
    write: HitWrite
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str | None = None
    error: AnalyticsError | None = None


class HitWriter:
    """Writes hits in batches from one thread of its own.

    A request hands its hit over and waits; the writer takes every hit queued by then (up to
    ``MAX_BATCH``), sends them in one pipeline, and wakes each request with its own outcome.
    It never waits for a batch to fill: under light load a batch is one hit, and under heavy
    load the hits that arrive while a batch is in flight make the next one, so the round trips
    (and the system calls and GIL hand-offs around them) are shared.
    """

    def __init__(self, store: CountStore, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._started_lock = threading.Lock()

    def write(self, hit: HitWrite) -> str:
        """Counts ``hit``; returns the hit script's outcome once its batch is written.

        Raises what the store raises for it (StoreUnavailable when Redis is away).
        """
        self._ensure_started()
        pending = _Pending(hit)
        with self._ready:
            if self._stopping:
                raise StoreUnavailable("the service is stopping")
            self._queue.append(pending)
            self._ready.notify()
        if not pending.done.wait(WAIT_SECONDS):
            raise StoreUnavailable()
        if pending.error is not None:
            raise pending.error
        assert pending.outcome is not None
        return pending.outcome

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued, then stops the writer's thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ensure_started(self) -> None:
        # Started on first use, in the process that uses it: a writer created before a server
        # forks its workers gets its thread in each worker, not in the parent alone.
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._started_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
                ]
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            outcomes = self._store.record_hits([p.write for p in batch])
        except AnalyticsError as err:
            for pending in batch:
                pending.error = err
                pending.done.set()
            return
        except Exception as err:  # never leave a request waiting on a bug
            log.exception("the hit writer failed", exc_info=err)
            failure = AnalyticsError("the hit could not be written")
            for pending in batch:
                pending.error = failure
                pending.done.set()
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AnalyticsError):
                pending.error = outcome
            else:
                pending.outcome = outcome
            pending.done.set()
