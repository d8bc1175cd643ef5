"""The hit writer: hits from many request threads go to Redis together, one pipelined write per
batch, and each request waits for its own outcome (a group commit). When Redis cannot take a
batch, the batch goes to the spool on disk before any of its requests is answered, and the
writer counts it from there once Redis takes writes again."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from analytics.clock import Clock, epoch_ms, system_clock
from analytics.errors import AnalyticsError, SpoolFull, StoreUnavailable
from analytics.spool import Spool, SpoolError
from analytics.store import MAX_HITS_PER_CALL, CountStore, HitCall, HitWrite

log = logging.getLogger(__name__)

MAX_BATCH = MAX_HITS_PER_CALL
"""Hits written in one pipeline at most; a longer queue is written in several. No more than a
call holds, so that a batch sends at most one call per site."""
WAIT_SECONDS = 30.0
"""How long a request waits for its batch: longer than any Redis timeout, so it never runs out
unless the writer itself is stuck."""
SPOOLED = "spooled"
"""The outcome of a hit kept in the spool: answered, and counted once Redis takes writes."""
ALREADY_COUNTED = "already_counted"
RATE_LIMITED = "rate_limited"
REPLAY_HITS = 1024
"""Hits taken from the spool for one replay step; new hits wait at most one step."""
RETRY_SECONDS = (0.25, 5.0)
"""The first and the longest wait before the spool tries Redis again after a failure."""
SCAN_SECONDS = 5.0
"""How often the spool looks for files of processes gone, to take them over."""


class SpoolObserver(Protocol):
    def spool_state(self, depth: int, size: int, oldest_age_seconds: float) -> None: ...

    def replayed(self, outcome: str, hits: int) -> None: ...


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
        if self.outcome is None and self.error is None:
            self.outcome, self.error = outcome, error
            self.done.release()


class HitWriter:
    """Writes hits in batches from one thread of its own.

    A request hands its hit over and waits; the writer takes every hit queued by then (up to
    ``MAX_BATCH``), sends them in one pipeline, and wakes each request with its own outcome.
    It never waits for a batch to fill: under light load a batch is one hit, and under heavy
    load the hits that arrive while a batch is in flight make the next one, so the round trips
    (and the system calls and GIL hand-offs around them) are shared.

    With a spool directory, a batch Redis cannot take (down, out of memory, read-only, timing
    out) is appended to the spool and synced, and its requests are answered "spooled". Until
    the spool is empty again, new batches go behind it, and between batches the writer replays
    it into Redis, each call carrying the writer's sequence number so that it counts once
    however often it is sent. Spool files left by processes gone are taken over and replayed.
    """

    def __init__(
        self,
        store: CountStore,
        spool_dir: Path | None = None,
        *,
        spool_max_bytes: int = 256 << 20,
        clock: Clock = system_clock,
        observer: SpoolObserver | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if not 0 < max_batch <= MAX_HITS_PER_CALL:
            raise ValueError(f"max_batch must be 1 to {MAX_HITS_PER_CALL}")
        self.id = secrets.token_hex(8)
        """This writer's name in the marks Redis keeps of what it counted: new for each
        thread it starts, each numbering its calls from 1."""
        self._store = store
        self._max_batch = max_batch
        self._clock = clock
        self._observer = observer
        self._spool_dir = spool_dir
        self._spool_max_bytes = spool_max_bytes
        self._spool: Spool | None = None
        self._seq = 0
        self._spooled_window = 0
        self._spooled_by_key: dict[str, int] = {}
        """Hits spooled by network and kind in the limits' current window: what Redis would
        hold back, held back before it takes the spool's room."""
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._started_lock = threading.Lock()
        self._retry_at = 0.0
        self._retry_wait = RETRY_SECONDS[0]

    def write(self, hit: HitWrite) -> str:
        """Counts ``hit``; returns the hit script's outcome once its batch is written, or
        "spooled" once it is safe in the spool.

        Raises SpoolFull when neither Redis nor the spool could take it, and what the store
        raises for it otherwise (StoreUnavailable without a spool).
        """
        if self._stopping:
            raise StoreUnavailable("the service is stopping")
        self.start()
        pending = _Pending(hit)
        self._queue.put(pending)
        if not pending.done.acquire(timeout=WAIT_SECONDS):
            raise StoreUnavailable()
        if pending.error is not None:
            raise pending.error
        assert pending.outcome is not None
        return pending.outcome

    def start(self) -> None:
        """Starts the writer's thread, if it is not running: on first use, or at once in a web
        worker, so that spool files left by a crash are counted before any new hit comes."""
        # In the process that uses it: a writer created before a server forks its workers
        # gets its thread in each worker, not in the parent alone.
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._started_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hit-writer", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Writes what is queued (to Redis or the spool), then stops the writer's thread. What
        waits in the spool stays there for the next start."""
        self._stopping = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def spool_depth(self) -> int:
        """Hits waiting in this process's spool."""
        return 0 if self._spool is None else self._spool.depth

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- the writer's thread ------------------------------------------------------------------

    def _run(self) -> None:
        # A name and a numbering of its own for every thread: one started again, after a bug
        # ended the last, must not number calls below the marks Redis keeps for the last.
        self.id = secrets.token_hex(8)
        self._seq = 0
        if self._spool_dir is not None:
            self._spool = Spool(self._spool_dir, self._spool_max_bytes, self.id)
        next_scan = 0.0
        try:
            while True:
                try:
                    next_scan, stop = self._turn(next_scan)
                except Exception as err:  # the thread must live on: try again later
                    log.exception("the hit writer failed", exc_info=err)
                    self._retry_at = time.monotonic() + RETRY_SECONDS[1]
                    stop = False
                if stop:
                    return
        finally:
            if self._spool is not None:
                self._spool.close()
                self._report()

    def _turn(self, next_scan: float) -> tuple[float, bool]:
        """One turn of the writer's thread: take the spool files of processes gone (every
        ``SCAN_SECONDS``), write the hits queued, replay a step of the spool when due. Returns
        when to look for files next, and whether to stop."""
        spool = self._spool
        now = time.monotonic()
        if spool is not None and now >= next_scan:
            next_scan = now + SCAN_SECONDS
            spool.take_over()
            self._report()
        if spool is None:
            timeout: float | None = None
        elif spool.pending and now >= self._retry_at:
            timeout = 0.0
        elif spool.pending:
            timeout = min(self._retry_at, next_scan) - now
        else:
            timeout = next_scan - now
        batch, stop = self._take(timeout)
        if batch:
            try:
                self._handle(batch)
            except Exception as err:  # never leave a request waiting on a bug
                log.exception("the hit writer failed", exc_info=err)
                for pending in batch:
                    pending.finish(None, AnalyticsError("the hit could not be written"))
        due = spool is not None and spool.pending and time.monotonic() >= self._retry_at
        if due and not stop and spool is not None:
            self._replay_step(spool)
        return next_scan, stop

    def _take(self, timeout: float | None) -> tuple[list[_Pending], bool]:
        try:
            if timeout is None:
                first = self._queue.get()
            elif timeout > 0:
                first = self._queue.get(timeout=timeout)
            else:
                first = self._queue.get_nowait()
        except queue.Empty:
            return [], False
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
        return batch, stop

    def _handle(self, batch: list[_Pending]) -> None:
        try:
            if self._spool is not None and self._spool.active:
                batch = self._within_limits(batch)
                if not batch:
                    return
            calls = self._store.calls([p.write for p in batch], self.id, self._next_seq)
            if self._spool is not None and self._spool.active:
                # Behind the hits already waiting, so that each site's count in order.
                self._to_spool([(call, [batch[n] for n in chunk]) for call, chunk in calls])
                return
            results = self._store.send([call for call, _ in calls])
        except AnalyticsError as err:
            for pending in batch:
                pending.finish(None, err)
            return
        spill: list[tuple[HitCall, list[_Pending]]] = []
        for (call, chunk), result in zip(calls, results, strict=True):
            pendings = [batch[n] for n in chunk]
            if isinstance(result, AnalyticsError) and self._spool is not None:
                # Down, out of memory, read-only, out of disk, or refusing for a reason of its
                # own: kept until Redis takes it, rather than lost.
                spill.append((call, pendings))
                for pending in pendings:  # held back by Redis, or not: spooled all the same
                    self._spooling(pending.write)
            elif isinstance(result, AnalyticsError):
                for pending in pendings:
                    pending.finish(None, result)
            else:
                for pending, outcome in zip(pendings, result, strict=True):
                    # Counted by an earlier send of the same call, whose answer was lost.
                    pending.finish("counted" if outcome == ALREADY_COUNTED else outcome, None)
        if spill:
            self._to_spool(spill)

    def _within_limits(self, batch: list[_Pending]) -> list[_Pending]:
        """The hits of ``batch`` that the rate limits let through, the others answered
        ``rate_limited`` at once: while Redis is away, one client cannot fill the spool that
        every site's hits need. (Redis applies the limits again as it counts them.)"""
        kept: list[_Pending] = []
        for pending in batch:
            if self._spooling(pending.write):
                kept.append(pending)
            else:
                pending.finish(RATE_LIMITED, None)
        return kept

    def _spooling(self, write: HitWrite) -> bool:
        """Counts ``write`` as spooled; whether its network stays within what it may add to
        the site in a window (its pageviews, or its heartbeats)."""
        limits = write.limits
        window = write.now_ms // (limits.window_minutes * 60_000)
        if window != self._spooled_window:
            self._spooled_by_key.clear()
            self._spooled_window = window
        key = write.own_keys[1] + write.kind
        seen = self._spooled_by_key.get(key, 0) + 1
        self._spooled_by_key[key] = seen
        return seen <= (limits.pageviews if write.kind == "pageview" else limits.heartbeats)

    def _to_spool(self, items: Sequence[tuple[HitCall, list[_Pending]]]) -> None:
        assert self._spool is not None
        starting = not self._spool.active
        try:
            self._spool.append([call for call, _ in items])
        except (SpoolError, OSError) as err:
            log.error(
                "hits lost: Redis cannot take them and the spool cannot keep them",
                extra={
                    "event": "hits_lost",
                    "hits": sum(len(p) for _, p in items),
                    "error": str(err),
                },
            )
            for _, pendings in items:
                for pending in pendings:
                    pending.finish(None, SpoolFull())
            return
        self._report()  # before the answers: whoever looks after them sees the hits waiting
        for _, pendings in items:
            for pending in pendings:
                pending.finish(SPOOLED, None)
        if starting:
            log.warning(
                "Redis cannot take hits: keeping them in the spool until it can",
                extra={"event": "spool_started", "directory": str(self._spool.directory)},
            )
            self._retry_at = time.monotonic() + self._retry_wait

    def _replay_step(self, spool: Spool) -> None:
        calls = spool.next_calls(REPLAY_HITS)
        if not calls:  # nothing readable yet: look again later, not at once
            self._retry_at = time.monotonic() + RETRY_SECONDS[0]
            self._report()
            return
        try:
            results: list[list[str] | AnalyticsError] = self._store.send(
                [self._store.current_layout(call) for call in calls]
            )
        except AnalyticsError as err:
            results = [err] * len(calls)
        done = 0
        for result in results:
            if isinstance(result, AnalyticsError):
                # Never dropped: kept, in order, until Redis takes it (a refusal that lasts
                # shows as a spool that does not drain, and in the Redis error log lines).
                break
            for outcome in result:
                self._replayed(outcome, 1)
            done += 1
        if done:
            spool.counted(done)
        if done == len(calls):
            self._retry_wait = RETRY_SECONDS[0]
            if not spool.pending:
                log.info(
                    "the spool is empty: every hit it kept is counted",
                    extra={"event": "spool_drained"},
                )
        else:
            self._retry_at = time.monotonic() + self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, RETRY_SECONDS[1])
        self._report()

    def _replayed(self, outcome: str, hits: int) -> None:
        if self._observer is not None:
            self._observer.replayed(outcome, hits)

    def _report(self) -> None:
        if self._observer is None or self._spool is None:
            return
        oldest = self._spool.oldest_ms()
        age = 0.0 if oldest is None else max(0.0, (epoch_ms(self._clock()) - oldest) / 1000)
        self._observer.spool_state(self._spool.depth, self._spool.bytes, age)
