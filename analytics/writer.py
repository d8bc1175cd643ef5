"""The hit writer: hits from many request threads go to Redis together, one pipelined write per
batch, and each request waits for its own outcome (a group commit)."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.store import CountStore, HitWrite

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Hits written in one pipeline at most; a longer queue is written in several."""
WAIT_SECONDS = 30.0
"""How long a request waits for its batch: longer than any Redis timeout, so it never runs out
unless the writer itself is stuck."""


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Pending:
    write: HitWrite
    # Released by the writer once the outcome is in: a lock taken twice is the cheapest wait
    # there is (an Event would add a Condition and a list of waiters per hit).
    done: threading.Lock = field(default_factory=_held_lock)
    outcome: str | None = None
    error: AnalyticsError | None = None

    def finish(self, outcome: str | None, error: AnalyticsError | None) -> None:
        self.outcome, self.error = outcome, error
        self.done.release()


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
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._started_lock = threading.Lock()

    def write(self, hit: HitWrite) -> str:
        """Counts ``hit``; returns the hit script's outcome once its batch is written.

        Raises what the store raises for it (StoreUnavailable when Redis is away).
        """
        if self._stopping:
            raise StoreUnavailable("the service is stopping")
        self._ensure_started()
        pending = _Pending(hit)
        self._queue.put(pending)
        if not pending.done.acquire(timeout=WAIT_SECONDS):
            raise StoreUnavailable()
        if pending.error is not None:
            raise pending.error
        assert pending.outcome is not None
        return pending.outcome

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued, then stops the writer's thread."""
        self._stopping = True
        self._queue.put(None)
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
            first = self._queue.get()
            batch = [] if first is None else [first]
            stop = first is None
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._write(batch)
            if stop and self._queue.empty():
                return

    def _write(self, batch: list[_Pending]) -> None:
        try:
            outcomes = self._store.record_hits([p.write for p in batch])
        except AnalyticsError as err:
            for pending in batch:
                pending.finish(None, err)
            return
        except Exception as err:  # never leave a request waiting on a bug
            log.exception("the hit writer failed", exc_info=err)
            failure = AnalyticsError("the hit could not be written")
            for pending in batch:
                pending.finish(None, failure)
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AnalyticsError):
                pending.finish(None, outcome)
            else:
                pending.finish(outcome, None)
