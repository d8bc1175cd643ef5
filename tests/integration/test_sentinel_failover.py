"""No hit answered 204 is lost across a Sentinel failover.

Several threads post beacons through the app (its Flask test client) on a primary, a replica
and one Sentinel (bench/sentinel.py), while ``SENTINEL FAILOVER`` promotes the replica. Once
the Sentinels have settled, every thread has stopped and the spool has drained, the site's
counted pageviews must equal the number of 204 answers exactly: a batch is acknowledged only
once a replica has it (WAIT), so what the old primary took after the replica left it goes to
the spool and is counted on the new one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.clock import FixedClock
from analytics.settings import Settings
from bench.sentinel import local_sentinel
from tests.helpers import EXAMPLE_INSTANT, counters, hit, wait_for

pytestmark = pytest.mark.slow

THREADS = 6
SITE = "demo"
BEFORE = 300  # beacons answered before the failover
AFTER = 300  # and after the Sentinels have settled on the new primary


def test_every_beacon_answered_204_across_a_failover_is_counted(tmp_path: Path) -> None:
    with local_sentinel(1) as servers:
        settings = Settings(
            redis_url=servers.url, data_dir=tmp_path, read_cache_seconds=0, site_cache_seconds=0
        )
        app = create_app(settings, clock=FixedClock(EXAMPLE_INSTANT), registry=CollectorRegistry())
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def poster(t: int) -> None:
            client = app.test_client()
            n = 0
            while not stop.is_set():
                url = f"https://example.vn/{t}/{n}"
                status = hit(client, SITE, url, ip=f"10.{t}.{n // 250}.{n % 250}")
                with lock:
                    statuses[status] += 1
                n += 1

        def answered() -> int:
            with lock:
                return sum(statuses.values())

        def reader() -> None:
            # Reads and readiness probes (a write of its own) share the writer's connections:
            # a WAIT must still answer for the batch's own connection.
            client = app.test_client()
            while not stop.is_set():
                client.get("/readyz")
                client.get(f"/api/v1/sites/{SITE}/counters")

        threads = [threading.Thread(target=poster, args=(t,)) for t in range(THREADS)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: answered() >= BEFORE, "beacons before the failover")
            before = answered()
            _old, new = servers.redis_ports
            started = time.monotonic()
            servers.failover()
            servers.wait_settled(new, 30)
            settled = time.monotonic() - started
            during = answered() - before
            wait_for(lambda: answered() >= before + during + AFTER, "beacons after it")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        client = app.test_client()
        wait_for(lambda: client.get("/readyz").status_code == 200, "readyz 200", seconds=10)
        writer = app.extensions["analytics"].counting.writer
        wait_for(lambda: writer.spool_depth == 0, "the spool to drain")
        counted = counters(client, SITE)["windows"]["total"]["pageviews"]
        app.extensions["analytics"].store.close()
        print(f"before: {before}; during the {settled:.1f} s failover: {during}")
        print(f"statuses: {dict(statuses)}")
        print(f"answered 204: {statuses[204]}; counted: {counted}")
        assert set(statuses) <= {204, 503}
        assert counted == statuses[204], f"{statuses[204] - counted} hits answered 204 were lost"
