"""The hit writer and the batched hit script: many hits in one call count exactly as they would
one by one, in order; requests from many threads share batches; a failed batch fails each."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import date

import pytest
import redis

from analytics.counting import Outcome
from analytics.errors import AnalyticsError, StoreUnavailable
from analytics.periods import Grain, Period
from analytics.services import Services
from analytics.store import (
    MAX_HITS_PER_CALL,
    HitCall,
    HitLimits,
    HitWrite,
    KeySpace,
    Store,
    connect,
)
from analytics.writer import HitWriter
from tests.helpers import count_from_threads

LIMITS = HitLimits(1_800_000, 1_800_000, 10_000)
DAY = Period(Grain.DAY, date(2026, 11, 26))
TOTAL = Period(Grain.TOTAL, None)


def writes(store: Store, site: str, n: int, *, kind: str = "pageview") -> list[HitWrite]:
    periods = store.counts.period_keys(site, [DAY, TOTAL]) if kind == "pageview" else ()
    return [
        store.counts.hit_write(
            site,
            periods,
            kind=kind,
            visitor=f"v{i % 7}",  # visitors come back: visits and duplicates within a call
            network="n",
            page=f"p{i % 5}",
            now_ms=1_764_169_265_000 + i,
            limits=LIMITS,
        )
        for i in range(n)
    ]


SEQ = itertools.count(1)


def record(store: Store, batch: Sequence[HitWrite]) -> list[str | AnalyticsError]:
    """Each hit's outcome, the batch sent as the writer sends it (one writer, numbering on)."""
    calls = store.counts.calls(batch, "w", lambda: next(SEQ))
    results = store.counts.send([call for call, _ in calls])
    outcomes: list[str | AnalyticsError] = [""] * len(batch)
    for (_, chunk), result in zip(calls, results, strict=True):
        for position, n in enumerate(chunk):
            outcomes[n] = result if isinstance(result, AnalyticsError) else result[position]
    return outcomes


def state(client: redis.Redis, prefix: str) -> dict[bytes, object]:
    """Every key under ``prefix`` but the writers' marks: its value, as counts would be
    compared."""
    found: dict[bytes, object] = {}
    for key in client.scan_iter(match=f"{prefix}:*"):
        if b":w:" in key:
            continue
        kind = client.type(key)
        name = key.split(b":", 1)[1]
        if kind == b"hash":
            found[name] = client.hgetall(key)
        elif kind == b"zset":
            found[name] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            found[name] = client.smembers(key)
        elif b":u:" in name:  # a HyperLogLog
            found[name] = client.pfcount(key)
        else:
            found[name] = (client.get(key), client.ttl(key) > 0)
    return found


def test_one_call_counts_as_hits_one_by_one_would(
    redis_url: str, redis_client: redis.Redis
) -> None:
    batched = Store.over(connect(redis_url), KeySpace("batched"))
    single = Store.over(connect(redis_url), KeySpace("single"))
    for store in (batched, single):
        for site in ("a", "b"):
            store.sites.save({"id": site})
    mixed = [
        *writes(batched, "a", MAX_HITS_PER_CALL + 20),
        *writes(batched, "b", 30),
        *writes(batched, "a", 10, kind="heartbeat"),
    ]
    alone = [
        *writes(single, "a", MAX_HITS_PER_CALL + 20),
        *writes(single, "b", 30),
        *writes(single, "a", 10, kind="heartbeat"),
    ]
    together = record(batched, mixed)
    one_by_one = [record(single, [w])[0] for w in alone]
    assert together == one_by_one
    assert {"counted", "duplicate", "heartbeat"} <= set(map(str, together))
    assert state(redis_client, "batched") == state(redis_client, "single")


def test_requests_from_many_threads_share_batches(services: Services) -> None:
    calls: list[int] = []
    send = services.store.counts.send

    def counting_calls(batch: Sequence[HitCall]) -> list[list[str] | AnalyticsError]:
        calls.append(sum(call.hits for call in batch))
        return send(batch)

    services.store.counts.send = counting_calls  # type: ignore[method-assign]
    outcomes = count_from_threads(services, 16, 40, lambda t, n: "demo")
    assert outcomes == [Outcome.COUNTED] * 640
    assert sum(calls) == 640
    assert max(calls) > 1  # hits that arrived while a batch was written made the next one
    assert services.reading.counters("demo", fresh=True).windows["today"].pageviews == 640


def test_a_batch_that_fails_fails_each_of_its_requests(services: Services) -> None:
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.5))
    writer = HitWriter(down.counts)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            writer.write(writes(down, "demo", 1)[0])
        except AnalyticsError as err:
            failures.append(err)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(failures) == 8 and all(isinstance(f, StoreUnavailable) for f in failures)
    writer.close()
    with pytest.raises(StoreUnavailable):
        writer.write(writes(down, "demo", 1)[0])  # a closed writer takes no more
