"""A hit answered 204 is counted exactly once: while Redis is stopped, out of memory or
read-only, hits go to the spool on disk, and are counted from there once Redis takes writes,
each once, whatever stopped the service in between (SIGTERM or SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from analytics.clock import FixedClock
from analytics.counting import Hit, Kind, Outcome
from analytics.embedded import EmbeddedRedis, free_port
from analytics.errors import AnalyticsError, SpoolFull
from analytics.periods import Grain, Period
from analytics.services import Services
from analytics.sites import SNAPSHOT_NAME, load_snapshot, save_snapshot
from analytics.spool import SUFFIX, decode, encode
from analytics.store import HitCall, HitLimits, HitWrite, KeySpace, Store, connect
from analytics.writer import SPOOLED, HitWriter
from tests.helpers import ANALYTICS, BROWSER_UA, app_on, counters, from_threads, hit, wait_for

CLIENT_IP = "198.51.100.23"
LIMITS = HitLimits(1_800_000, 1_800_000, 10_000)


MakeApp = Callable[[str, Path], Flask]


@pytest.fixture
def make_app(clock: FixedClock) -> Iterator[MakeApp]:
    """Apps of the test's own (each a process of the service), closed at its end: their
    writers stopped, their Redis connections closed."""
    made: list[Flask] = []

    def make(url: str, data_dir: Path) -> Flask:
        made.append(app_on(url, data_dir, clock))
        return made[-1]

    yield make
    for app in made:
        services_of(app).counting.writer.close()
        services_of(app).store.close()


def services_of(app: Flask) -> Services:
    found: Services = app.extensions["analytics"]
    return found


def drained(app: Flask) -> None:
    services = services_of(app)
    wait_for(lambda: services.counting.writer.spool_depth == 0, "the spool to drain")


def sample(app: Flask, name: str, **labels: str) -> float:
    value = services_of(app).metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def hits_from_threads(
    client: FlaskClient,
    threads: int,
    each: int,
    during: threading.Event | None = None,
    *,
    round_: int = 0,
) -> list[int]:
    """Pageviews from ``threads`` threads, each a new visitor on a new page (a new ``round_``
    of them each time); the statuses. ``during`` is set a third of the way through."""

    def read(t: int, n: int) -> int:
        url = f"https://example.vn/{round_}/{t}/{n}"
        status = hit(client, url=url, ip=f"10.{round_ + 1}.{t}.{n}")
        if during is not None and n == each // 3 and t == 0:
            during.set()
        return status

    return from_threads(threads, each, read)


def test_hits_while_redis_is_stopped_are_counted_once_it_is_back(
    own_redis: EmbeddedRedis, tmp_path: Path, make_app: MakeApp
) -> None:
    app = make_app(own_redis.url, tmp_path / "app")
    client = app.test_client()
    stopped = threading.Event()

    def stop_redis_midway() -> None:
        stopped.wait(60)
        own_redis.stop()

    stopper = threading.Thread(target=stop_redis_midway)
    stopper.start()
    # Redis stops while these come; the next round comes while it is stopped.
    statuses = hits_from_threads(client, 6, 20, during=stopped)
    stopper.join(60)
    statuses += hits_from_threads(client, 6, 20, round_=1)
    assert client.get("/readyz").status_code == 503
    assert statuses == [204] * 240
    spooled = sample(app, "analytics_hits_total", outcome="spooled")
    assert spooled >= 120 and sample(app, "analytics_spool_depth") == spooled
    assert sample(app, "analytics_hits_total", outcome="counted") + spooled == 240

    own_redis.start()
    drained(app)
    assert client.get("/readyz").status_code == 200
    assert counters(client)["windows"]["today"]["pageviews"] == 240
    assert counters(client)["windows"]["total"]["visits"] == 240  # each a new visitor
    # A batch in flight as Redis stopped may have been counted with its answer lost: sent
    # again from the spool, it counted nothing twice.
    replayed = sample(app, "analytics_spool_replayed_total", outcome="counted")
    already = sample(app, "analytics_spool_replayed_total", outcome="already_counted")
    assert replayed + already == spooled
    assert sample(app, "analytics_spool_oldest_age_seconds") == 0
    assert not list((tmp_path / "app" / "spool").glob("*" + SUFFIX))


REFUSALS: dict[str, tuple[list[tuple[str, ...]], list[tuple[str, ...]]]] = {
    "out of memory": (
        [("CONFIG", "SET", "maxmemory", "1")],
        [("CONFIG", "SET", "maxmemory", "0")],
    ),
    "read-only": (
        [("REPLICAOF", "127.0.0.1", "1")],
        [("REPLICAOF", "NO", "ONE")],
    ),
    # Its own disk failing: a snapshot that cannot be written stops every write (MISCONF).
    "disk failing": (
        [("CONFIG", "SET", "save", "3600 1"), ("CONFIG", "SET", "dir", "/sys"), ("BGSAVE",)],
        [("CONFIG", "SET", "dir", "{dir}"), ("CONFIG", "SET", "save", ""), ("BGSAVE",)],
    ),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_a_redis_that_refuses_writes_is_waited_out(
    own_redis: EmbeddedRedis, tmp_path: Path, make_app: MakeApp, refusal: str
) -> None:
    """Out of memory, read-only, or unable to write its disk, Redis answers but takes no
    write: every beacon from several threads is kept and counted once it does again; no
    answer names Redis's own words."""
    app = make_app(own_redis.url, tmp_path / "app")
    client = app.test_client()
    assert hit(client, url="https://example.vn/first") == 204
    admin = redis.Redis.from_url(own_redis.url)
    refuse, allow = REFUSALS[refusal]
    try:
        for command in refuse:
            admin.execute_command(*command)  # type: ignore[no-untyped-call]
        wait_for(lambda: client.get("/readyz").status_code == 503, "Redis to refuse writes")
        statuses = hits_from_threads(client, 4, 10)
        assert statuses == [204] * 40
        ready = client.get("/readyz").get_data(as_text=True)
        for word in ("OOM", "READONLY", "MISCONF", "script", "maxmemory"):
            assert word not in ready
    finally:
        for command in allow:
            admin.execute_command(  # type: ignore[no-untyped-call]
                *(part.format(dir=own_redis.data_dir) for part in command)
            )
        admin.close()
    drained(app)
    assert client.get("/readyz").status_code == 200
    assert counters(client)["windows"]["today"]["pageviews"] == 41
    assert (
        sample(app, "analytics_hits_total", outcome="counted")
        + sample(app, "analytics_hits_total", outcome="spooled")
        == 41
    )
    assert sample(app, "analytics_hits_total", outcome="spooled") >= 40 - 1
    assert sample(app, "analytics_hits_total", outcome="invalid") == 0
    assert sample(app, "analytics_hits_total", outcome="lost") == 0


def test_the_spool_holds_no_address_or_user_agent_and_is_private(
    own_redis: EmbeddedRedis, tmp_path: Path, make_app: MakeApp
) -> None:
    app = make_app(own_redis.url, tmp_path / "app")
    client = app.test_client()
    own_redis.stop()
    assert hit(client, ip=CLIENT_IP) == 204
    spool = tmp_path / "app" / "spool"
    (path,) = spool.glob("*" + SUFFIX)
    content = path.read_text()
    assert CLIENT_IP not in content and BROWSER_UA not in content and "Mozilla" not in content
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


class Replayed:
    """What a writer reports of its spool: the outcomes of the hits it replayed."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()

    def spool_state(self, depth: int, size: int, oldest_age_seconds: float) -> None:
        pass

    def replayed(self, outcome: str, hits: int) -> None:
        self.outcomes[outcome] += hits


DAY = Period(Grain.DAY, date(2026, 11, 26))
TOTAL = Period(Grain.TOTAL, None)
NO_RELOAD_GUARD = HitLimits(1_800_000, 1_800_000, 0)


def pageview(store: Store, n: int, *, network: str = "n", day: Period = DAY) -> HitWrite:
    """The n-th pageview, a new visitor on the same page, the reload guard off: were a hit
    counted twice, the counts would show it."""
    return store.counts.hit_write(
        "demo",
        store.counts.period_keys("demo", [day, TOTAL]),
        kind="pageview",
        visitor=f"v{n}",
        network=network,
        page="p",
        now_ms=1_764_169_265_000 + n,
        limits=NO_RELOAD_GUARD,
    )


def pageviews(client: redis.Redis, period: Period) -> int:
    return int(client.hget(KeySpace().counts("demo", period), "pageviews") or 0)


def test_a_replay_cut_short_by_a_crash_counts_nothing_twice(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A process spooled hits, counted some of them from its spool, and died before it could
    note that it had: the process that takes its file over counts each hit once."""
    spool = tmp_path / "spool"
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    up = Store.over(connect(redis_url), KeySpace())
    up.sites.save({"id": "demo"})
    first = HitWriter(down.counts, spool)
    for n in range(30):
        assert first.write(pageview(up, n)) == SPOOLED
    first.close()
    (path,) = spool.glob("*" + SUFFIX)
    # What the first process got to count before it died: the first half of its spool.
    calls = [call for line in path.read_bytes().splitlines(keepends=True) if (call := decode(line))]
    counted_before = calls[: len(calls) // 2]
    assert up.counts.send(counted_before) == [["counted"]] * len(counted_before)
    assert pageviews(redis_client, DAY) == len(counted_before)

    replayed = Replayed()
    second = HitWriter(up.counts, spool, observer=replayed)
    second.start()
    wait_for(lambda: not list(spool.glob("*" + SUFFIX)), "the spool file to be counted")
    second.close()
    assert pageviews(redis_client, DAY) == pageviews(redis_client, TOTAL) == 30
    assert replayed.outcomes == {
        "already_counted": len(counted_before),
        "counted": 30 - len(counted_before),
    }
    marks = list(redis_client.scan_iter(match="va:{demo}:w:*"))
    assert len(marks) == 1 and int(redis_client.get(marks[0]) or 0) == calls[-1].seq


def test_a_hit_spooled_on_a_day_closed_since_counts_in_the_windows_still_open(
    services: Services, redis_client: redis.Redis, tmp_path: Path, clock: FixedClock
) -> None:
    """Spooled on the 26th, counted after the 26th was closed into the history: the day stays
    as it was closed; the total (and the week and month, still open) count it."""
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    spool = tmp_path / "another-process"  # not the app's own, which would count it at once
    first = HitWriter(down.counts, spool)
    up = services.store
    write = pageview(up, 1)
    assert first.write(write) == SPOOLED
    first.close()
    assert (
        services.counting.count(
            Hit("demo", "https://example.vn/", Kind.PAGEVIEW, CLIENT_IP, BROWSER_UA)
        )
        is Outcome.COUNTED
    )  # the 26th had one hit when it closed
    clock.advance(2 * 86_400)
    services.housekeeper.close_periods()
    assert redis_client.hget(KeySpace().counts("demo", DAY), "visitors") is not None  # closed
    second = HitWriter(up.counts, spool)
    second.start()
    wait_for(lambda: not list(spool.glob("*" + SUFFIX)), "the spool file to be counted")
    second.close()
    assert pageviews(redis_client, DAY) == 1
    assert pageviews(redis_client, TOTAL) == 2


def test_while_spooling_one_network_cannot_fill_the_spool(tmp_path: Path) -> None:
    """Redis applies the rate limits as it counts; while it is away, the writer applies them
    before the spool, so one client keeps the others' room."""
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    writer = HitWriter(down.counts, tmp_path / "spool")
    limit = NO_RELOAD_GUARD.pageviews
    outcomes = Counter(writer.write(pageview(down, n, network="one")) for n in range(limit + 50))
    writer.close()
    assert outcomes == {SPOOLED: limit, "rate_limited": 50}


def test_a_batch_of_several_sites_is_counted_after_redis_lost_its_scripts(
    redis_url: str, redis_client: redis.Redis
) -> None:
    store = Store.over(connect(redis_url), KeySpace())
    for site in ("demo", "other"):
        store.sites.save({"id": site})
    writes = [pageview(store, 1)]
    writes.append(replace(writes[0], site_id="other"))
    seq = iter(range(1, 100))
    calls = [call for call, _ in store.counts.calls(writes, "w", lambda: next(seq))]
    redis_client.script_flush()
    assert store.counts.send(calls) == [["counted"], ["counted"]]


def test_a_full_spool_loses_the_hit_with_a_503(tmp_path: Path) -> None:
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    writer = HitWriter(down.counts, tmp_path / "spool", spool_max_bytes=4096)
    outcomes: list[str] = []
    with pytest.raises(SpoolFull):
        for n in range(100):
            write = down.counts.hit_write(
                "demo",
                (),
                kind="heartbeat",
                visitor=f"v{n}",
                network="n",
                page="p",
                now_ms=1_764_169_265_000,
                limits=LIMITS,
            )
            outcomes.append(writer.write(write))
    writer.close()
    assert outcomes and set(outcomes) == {SPOOLED}
    assert sum(p.stat().st_size for p in (tmp_path / "spool").glob("*" + SUFFIX)) <= 4096


@contextmanager
def web_process(
    url: str, data_dir: Path, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`analytics web` with one worker on ``url``, its spool under ``data_dir``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.update(
        ANALYTICS_REDIS_URL=url,
        ANALYTICS_DATA_DIR=str(data_dir),
        ANALYTICS_WORKERS="1",
        ANALYTICS_READ_CACHE_SECONDS="0",
        TMPDIR=str(data_dir.parent),
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            [ANALYTICS, "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_for(up, "analytics web")
        yield process, base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def post_hit(base: str, n: int) -> int:
    body = json.dumps({"site": "demo", "url": f"https://example.vn/kill/{n}"}).encode()
    request = urllib.request.Request(
        f"{base}/api/v1/hit",
        data=body,
        headers={"User-Agent": BROWSER_UA, "Content-Type": "text/plain", "X-Forwarded-For": ""},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_spooled_hits_survive_a_stop_or_kill_of_the_service(
    own_redis: EmbeddedRedis, tmp_path: Path, stop: signal.Signals
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "web.log"
    url = own_redis.url
    with web_process(url, data_dir, log) as (process, base):
        assert post_hit(base, 0) == 204  # the site is registered and counting
        own_redis.stop()
        statuses: list[int] = []
        lock = threading.Lock()

        def send(t: int) -> None:
            for n in range(15):
                status = post_hit(base, 1000 * (t + 1) + n)
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert statuses == [204] * 60
        os.killpg(process.pid, stop)
        process.wait(30)
    assert list((data_dir / "spool").glob("*" + SUFFIX))  # left for the next start
    own_redis.start()
    with web_process(url, data_dir, log) as (_, base):

        def counted() -> bool:
            with urllib.request.urlopen(f"{base}/api/v1/sites/demo/counters", timeout=5) as r:
                return bool(json.load(r)["windows"]["total"]["pageviews"] == 61)

        wait_for(counted, "every answered hit to be counted")
        wait_for(lambda: not list((data_dir / "spool").glob("*" + SUFFIX)), "an empty spool")
        with urllib.request.urlopen(f"{base}/api/v1/sites/demo/counters", timeout=5) as r:
            assert json.load(r)["windows"]["total"]["pageviews"] == 61


def test_a_site_read_at_start_counts_into_the_spool_before_its_first_hit(
    own_redis: EmbeddedRedis, tmp_path: Path, make_app: MakeApp
) -> None:
    """A web worker reads every site at start: should Redis go away before a site's first hit
    there, the hit is still kept. A worker that did not, and a worker started while Redis is
    away, answer 503 for it, and the second still starts and answers its health."""
    services_of(make_app(own_redis.url, tmp_path / "a")).sites.upsert({"id": "other"})
    preloaded = make_app(own_redis.url, tmp_path / "b")
    assert services_of(preloaded).sites.preload() == 2  # demo and other
    cold = make_app(own_redis.url, tmp_path / "c")
    own_redis.stop()
    assert hit(preloaded.test_client(), "other") == 204
    assert hit(cold.test_client(), "other") == 503
    started_during = make_app(own_redis.url, tmp_path / "d")
    assert started_during.test_client().get("/healthz").status_code == 200
    assert hit(started_during.test_client(), "other") == 503
    # What a worker started during the outage does: it knows the sites another one saved.
    snapshot = tmp_path / SNAPSHOT_NAME
    save_snapshot(snapshot, services_of(preloaded).sites.known_sites())
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    services_of(started_during).sites.remember(load_snapshot(snapshot))
    assert hit(started_during.test_client(), "other") == 204
    own_redis.start()
    drained(preloaded)
    drained(started_during)
    assert counters(cold.test_client(), "other")["windows"]["total"]["pageviews"] == 2


def in_the_layout_before_the_pages_lists(call: HitCall) -> HitCall:
    """``call`` as a version before the pages lists spooled it: no lists' keys, five arguments a
    hit (no page path, no referrer host, no caps)."""
    pairs = int(call.args[0])
    lists = 3 * pairs // 2
    keys = (*call.keys[: 3 + pairs], *call.keys[3 + pairs + lists :])
    args: list[str | int] = list(call.args[:12])
    for n in range(call.hits):
        args += call.args[15 + 7 * n : 20 + 7 * n]
    return replace(call, keys=keys, args=tuple(args))


def test_a_spool_written_before_the_pages_lists_is_counted_after_an_upgrade(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Hits a version before the pages lists answered 204 and spooled are counted once by this
    one: their calls take this version's layout (they count in no list, having no page)."""
    spool = tmp_path / "spool"
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    up = Store.over(connect(redis_url), KeySpace())
    up.sites.save({"id": "demo"})
    first = HitWriter(down.counts, spool)
    for n in range(5):
        assert first.write(pageview(up, n)) == SPOOLED
    first.close()
    (path,) = spool.glob("*" + SUFFIX)
    calls = [call for line in path.read_bytes().splitlines(keepends=True) if (call := decode(line))]
    old = [in_the_layout_before_the_pages_lists(call) for call in calls]
    path.write_bytes(b"".join(encode(call) for call in old))
    # As it is, the script refuses the old layout whole, writing nothing.
    before = sorted(redis_client.scan_iter(match="va:{demo}:*"))
    assert all(isinstance(reply, AnalyticsError) for reply in up.counts.send(old[:1]))
    assert sorted(redis_client.scan_iter(match="va:{demo}:*")) == before

    replayed = Replayed()
    second = HitWriter(up.counts, spool, observer=replayed)
    second.start()
    wait_for(lambda: not list(spool.glob("*" + SUFFIX)), "the old spool file to be counted")
    second.close()
    assert replayed.outcomes == {"counted": 5}
    assert pageviews(redis_client, DAY) == pageviews(redis_client, TOTAL) == 5
    assert not list(redis_client.scan_iter(match="va:{demo}:pg:*"))


def test_a_late_hit_on_a_day_closed_empty_counts_in_the_open_windows_and_no_list_of_it(
    services: Services, redis_client: redis.Redis, tmp_path: Path, clock: FixedClock
) -> None:
    """A day that had no hit is closed too: a hit spooled on it and counted after counts in the
    week, the month and the total, and leaves no key of the closed day behind for good."""
    down = Store.over(connect("redis://127.0.0.1:1/0", timeout=0.2), KeySpace())
    spool = tmp_path / "another-process"
    first = HitWriter(down.counts, spool)
    up = services.store
    assert first.write(replace(pageview(up, 1), path="/late")) == SPOOLED
    first.close()
    clock.advance(2 * 86_400)
    services.housekeeper.close_periods()
    second = HitWriter(up.counts, spool)
    second.start()
    wait_for(lambda: not list(spool.glob("*" + SUFFIX)), "the spool file to be counted")
    second.close()
    assert pageviews(redis_client, DAY) == 0
    assert pageviews(redis_client, TOTAL) == 1
    keys = KeySpace()
    assert redis_client.zscore(keys.pages("demo", TOTAL), "/late") == 1
    for key in (keys.pages("demo", DAY), keys.referrers("demo", DAY)):
        assert not redis_client.exists(key), key
    # Whatever a closed day still has expires, or is the counts hash that retention drops.
    for key in redis_client.scan_iter(match="va:{demo}:*:d:2026-11-26"):
        assert key == keys.counts("demo", DAY).encode() or redis_client.pttl(key) > 0, key
