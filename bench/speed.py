"""Every speed goal in one run: each server configuration against the same embedded Redis.

``python -m bench.speed`` (from the project folder; ``--quick`` for a smoke run, ``--only
NAME`` for one server, ``--cluster`` to add a run on a local 3-master Redis Cluster) starts
one embedded Redis (``analytics.embedded.EmbeddedRedis``), then in turn, each on an emptied
Redis, each as its own process tree on 127.0.0.1 and a free port:

- ``serve``: the real ``analytics serve --port P`` with its defaults;
- ``gthread``: gunicorn, ``--workers`` processes of ``--blocking-threads`` threads (when
  gunicorn is installed: it is no dependency of the service, which it no longer runs);
- ``gevent``: the same with ``-k gevent`` (when gunicorn and gevent are installed);
- ``granian``: ``granian --interface wsgi analytics.wsgi:app`` (when granian is importable).

Against each, wrk runs the trivial route (``GET /healthz``), the beacon (bench/beacon.lua: a
new visitor on a new page per request), the beacon again paced at half the rate the first
run reached (bench/beacon_paced.lua), and the reads (counters, widget, badge). It prints
markdown tables: rates, latency, the server tree's CPU per request, the ratios to the
trivial route, whether every beacon answered 204 was counted (the exit status is 1 when
not), what each hit and read costs Redis, and a capacity section (bytes per hit and per
visitor, Redis calls per read, history bytes per site-day). See bench/README.md.
Every process listens on and talks to 127.0.0.1 only; every run and wait is bounded; every
child is stopped at the end, on Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry
from redis.crc import key_slot

from analytics.cli import Stop, handle_stop_signals
from analytics.clock import FixedClock
from analytics.counting import Hit, Kind, Outcome
from analytics.embedded import EmbeddedRedis
from analytics.services import build_services
from analytics.settings import Settings
from analytics.sites import DEMO_SITE
from analytics.store import KeySpace
from bench.cluster import Cluster, local_cluster
from bench.load import (
    BENCH_DIR,
    BROWSER_UA,
    BenchError,
    RedisFigures,
    WrkResult,
    http,
    redis_cpu,
    redis_figures,
    run_wrk,
)
from bench.servers import BIN, Running, tree_cpu, warm_up

SITE = "demo"
TRIVIAL = "trivial"
BEACON = "beacon"
PACED = "beacon at half rate"
READS = {
    "counters": f"/api/v1/sites/{SITE}/counters",
    "widget": f"/widget/{SITE}",
    "badge": f"/badge/{SITE}.svg",
}
HIT_PATH = "/api/v1/hit"
# Each worker answers reads from a cache of at most read_cache_seconds (1 s by default):
# totals are read this long after a run, so that they are Redis's.
PAST_READ_CACHE = 1.3
QUICK_DURATION = 2.0
QUICK_DAYS = 7
KEYS = KeySpace()
P99_GOAL_MS = 10.0


# -- configurations --------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One way to serve the app; ``skip`` says why it cannot run here, if it cannot."""

    key: str  # what --only takes
    name: str
    command: list[str]
    env: dict[str, str]
    skip: str | None = None


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def configurations(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> list[Config]:
    def metrics_dir(key: str) -> dict[str, str]:
        """The multiprocess metrics directory of a multi-worker server, summed by /metrics."""
        path = workdir / f"metrics-{key}"
        path.mkdir()
        return {**env, "PROMETHEUS_MULTIPROC_DIR": str(path)}

    gunicorn = [
        str(BIN / "gunicorn"),
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.blocking_threads),
        "--keep-alive",
        "5",
    ]
    no_gunicorn = None if _importable("gunicorn") else "gunicorn is not installed"
    granian = BIN / "granian"
    configs = [
        Config(
            "serve",
            "analytics serve",
            [str(BIN / "analytics"), "serve", "--port", "{port}"],
            {**env, "ANALYTICS_DATA_DIR": str(workdir / "serve-data")},
        ),
        Config(
            "gthread",
            "gunicorn gthread",
            [*gunicorn, "-k", "gthread", "analytics.wsgi:app"],
            metrics_dir("g"),
            no_gunicorn,
        ),
        Config(
            "gevent",
            "gunicorn gevent",
            [*gunicorn, "-k", "gevent", "analytics.wsgi:app"],
            metrics_dir("e"),
            no_gunicorn or (None if _importable("gevent") else "gevent is not installed"),
        ),
        Config(
            "granian",
            "granian",
            [
                str(granian),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                str(args.workers),
                "--blocking-threads",
                str(args.blocking_threads),
                "--log-level",
                "warning",
                "analytics.wsgi:app",
            ],
            metrics_dir("r"),
            None if _importable("granian") and granian.exists() else "granian is not installed",
        ),
    ]
    return [c for c in configs if args.only in (None, c.key)]


# -- what the service and Redis say ------------------------------------------------


_SAMPLE = re.compile(r"^(analytics_[a-z_]+)\{([^}]*)\} ([0-9.e+-]+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def service_counts(base: str) -> tuple[int, int, int]:
    """(demo total pageviews, hits counted by /metrics, beacons answered 204 by /metrics)."""
    _, body = http("GET", f"{base}{READS['counters']}")
    total = int(json.loads(body)["windows"]["total"]["pageviews"])
    _, text = http("GET", f"{base}/metrics")
    counted = answered = 0
    for name, labels_text, value in _SAMPLE.findall(text.decode()):
        labels = dict(_LABEL.findall(labels_text))
        if name == "analytics_hits_total" and labels.get("outcome") == "counted":
            counted += int(float(value))
        elif (
            name == "analytics_http_requests_total"
            and labels.get("route") == HIT_PATH
            and labels.get("status") == "204"
        ):
            answered += int(float(value))
    return total, counted, answered


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def site_memory(client: redis.Redis, site: str) -> dict[str, tuple[int, int]]:
    """Per kind of key of ``site`` (c, u, online, dup, rl, ...): (keys, MEMORY USAGE bytes)."""
    kinds: dict[str, tuple[int, int]] = {}
    for key in client.scan_iter(match=KEYS.site_pattern(site), count=1000):
        kind = key.decode().split("}:", 1)[1].split(":", 1)[0]
        keys, size = kinds.get(kind, (0, 0))
        kinds[kind] = (keys + 1, size + int(client.memory_usage(key, samples=0) or 0))
    return kinds


def reset_stats(client: redis.Redis) -> float:
    """Empties INFO commandstats; Redis's CPU seconds so far."""
    client.config_resetstat()
    return redis_cpu(client)


# -- one server --------------------------------------------------------------------


@dataclass
class RouteRun:
    route: str
    wrk: WrkResult
    cpu_seconds: float  # the server tree's

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds * 1e6 / self.wrk.requests if self.wrk.requests else 0.0


@dataclass
class BeaconCheck:
    """What the service did with the beacons of one run."""

    answered_wrk: int  # 2xx answers wrk received
    answered: int  # 204 answers the service gave (its /metrics)
    counted_total: int  # growth of the demo site's total pageviews
    counted_metric: int  # growth of analytics_hits_total{outcome="counted"}
    redis: RedisFigures
    seconds: float  # wall time of the run

    def problems(self, connections: int) -> list[str]:
        found = []
        if not self.answered_wrk:
            found.append("no beacon was answered")
        if not self.answered == self.counted_total == self.counted_metric:
            found.append(
                f"{self.answered} beacons answered 204 but the total grew by "
                f"{self.counted_total} and the counted metric by {self.counted_metric}"
            )
        # In-flight requests when wrk stops are answered and counted, but not seen by wrk.
        if not self.answered_wrk <= self.answered <= self.answered_wrk + connections:
            found.append(f"wrk saw {self.answered_wrk} answers, the service {self.answered}")
        return found

    def per_hit_us(self, seconds: float) -> float:
        return seconds * 1e6 / self.counted_total if self.counted_total else 0.0


@dataclass
class Capacity:
    hits: int
    memory_growth: int  # used_memory
    visitors: int  # growth of the online set
    kinds: dict[str, tuple[int, int]]  # the site's keys after the run, by kind


@dataclass
class ServerResult:
    config: Config
    runs: dict[str, RouteRun] = field(default_factory=dict)
    beacon: BeaconCheck | None = None
    paced: BeaconCheck | None = None
    paced_target: float = 0.0
    paced_pause_ms: float = 0.0
    capacity: Capacity | None = None
    reads_redis: RedisFigures | None = None
    problems: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, args: argparse.Namespace, wrk: str, client: redis.Redis, logs: Path) -> None:
        self.args = args
        self.logs = logs
        self.wrk = wrk
        self.client = client
        self.runs_on_redis = 0  # beacon runs since the last flush: each sends new visitors

    def wrk_run(
        self, server: Running, route: str, path: str, script: str, script_args: Sequence[str] = ()
    ) -> RouteRun:
        before = tree_cpu(server.process.pid)
        result = run_wrk(
            self.wrk,
            server.base + path,
            BENCH_DIR / script,
            duration=self.args.duration,
            connections=self.args.connections,
            threads=self.args.threads,
            script_args=script_args,
        )
        return RouteRun(route, result, tree_cpu(server.process.pid) - before)

    def beacon_run(
        self,
        server: Running,
        route: str,
        script: str,
        extra: Sequence[str] = (),
        capacity: bool = False,
    ) -> tuple[RouteRun, BeaconCheck, Capacity | None]:
        time.sleep(PAST_READ_CACHE)
        total0, counted0, answered0 = service_counts(server.base)
        memory0 = used_memory(self.client)
        online0 = int(self.client.zcard(KEYS.online(SITE)))
        cpu0 = reset_stats(self.client)
        first = str(self.runs_on_redis * self.args.threads)
        self.runs_on_redis += 1
        started = time.monotonic()
        run = self.wrk_run(server, route, HIT_PATH, script, [first, SITE, *extra])
        seconds = time.monotonic() - started
        # The requests in flight when wrk stopped are answered and counted too: wait for them.
        time.sleep(PAST_READ_CACHE)
        figures = redis_figures(self.client, cpu0)
        found: Capacity | None = None
        if capacity:
            found = Capacity(
                hits=0,
                memory_growth=used_memory(self.client) - memory0,
                visitors=int(self.client.zcard(KEYS.online(SITE))) - online0,
                kinds=site_memory(self.client, SITE),
            )
        total1, counted1, answered1 = service_counts(server.base)
        check = BeaconCheck(
            answered_wrk=run.wrk.requests - run.wrk.non_2xx,
            answered=answered1 - answered0,
            counted_total=total1 - total0,
            counted_metric=counted1 - counted0,
            redis=figures,
            seconds=seconds,
        )
        if found is not None:
            found.hits = check.counted_total
        return run, check, found

    def server(self, config: Config) -> ServerResult:
        result = ServerResult(config)
        self.client.flushall()
        self.runs_on_redis = 0
        log = self.logs / f"{config.key}.log"
        server = Running(config.name, config.command, config.env, log)
        try:
            warm_up(server)
            result.runs[TRIVIAL] = self.wrk_run(server, TRIVIAL, "/healthz", "report.lua")
            run, result.beacon, result.capacity = self.beacon_run(
                server, BEACON, "beacon.lua", capacity=True
            )
            result.runs[BEACON] = run
            rate = run.wrk.per_second
            if rate > 0:
                result.paced_target = rate / 2
                result.paced_pause_ms = self.args.connections * 1000 / result.paced_target
                paced, result.paced, _ = self.beacon_run(
                    server, PACED, "beacon_paced.lua", [f"{result.paced_pause_ms:.3f}"]
                )
                result.runs[PACED] = paced
            for route, path in READS.items():
                cpu0 = reset_stats(self.client)
                result.runs[route] = self.wrk_run(server, route, path, "report.lua")
                if route == "counters":
                    result.reads_redis = redis_figures(self.client, cpu0)
        finally:
            server.stop()
        for check in (result.beacon, result.paced):
            if check is not None:
                result.problems += check.problems(self.args.connections)
        for run in result.runs.values():
            if run.wrk.non_2xx or run.wrk.requests == 0:
                result.problems.append(
                    f"{run.route}: {run.wrk.non_2xx} non-2xx of {run.wrk.requests} answers"
                )
        return result


# -- memory per site-day ------------------------------------------------------------


@dataclass(frozen=True)
class SiteDays:
    days: int
    hits_per_day: int
    history_bytes: int
    site_bytes: int  # every key of the site that does not expire by itself


def site_days(redis_url: str, days: int) -> SiteDays:
    """``days`` simulated days of one site through the real counting and housekeeping."""
    site, visitors, pages = "capacity", 40, 2
    start = date(2026, 1, 1)
    clock = FixedClock(datetime.combine(start, day_time(0), UTC))
    services = build_services(
        Settings(redis_url=redis_url), clock=clock, registry=CollectorRegistry(), seed=False
    )
    try:
        services.sites.upsert({"id": site, "timezone": "UTC"})
        for day in range(days):
            for visitor in range(visitors):
                for page in range(pages):
                    clock.set(
                        datetime.combine(start + timedelta(days=day), day_time(9), UTC)
                        + timedelta(minutes=visitor * 5 + page)
                    )
                    outcome = services.counting.count(
                        Hit(
                            site,
                            f"https://example.vn/{visitor}/{page}",
                            Kind.PAGEVIEW,
                            f"198.51.100.{visitor}",
                            BROWSER_UA,
                        )
                    )
                    if outcome is not Outcome.COUNTED:
                        raise BenchError(f"a simulated hit was {outcome.value}, not counted")
            for hour in (12, 24):  # two scheduler ticks a day
                clock.set(
                    datetime.combine(start + timedelta(days=day), day_time(0), UTC)
                    + timedelta(hours=hour, minutes=30)
                )
                services.housekeeper.run_all()
        client = redis.Redis.from_url(redis_url)
        history = site_bytes = 0
        with contextlib.closing(client):
            for key in client.scan_iter(match=KEYS.site_pattern(site), count=1000):
                size = int(client.memory_usage(key, samples=0) or 0)
                if b"}:h:" in key:
                    history += size
                if client.pttl(key) < 0:  # the reload guards and rate limits expire
                    site_bytes += size
        return SiteDays(days, visitors * pages, history, site_bytes)
    finally:
        services.store.close()


# -- Redis Cluster -------------------------------------------------------------------


@dataclass
class ClusterResult:
    config: Config
    run: RouteRun
    sites: dict[int, str]  # master port -> the site whose slot it owns
    counted: dict[str, int]
    redis: dict[int, RedisFigures]
    problems: list[str] = field(default_factory=list)


def sites_by_master(cluster: Cluster) -> dict[int, str]:
    """One site id per master, so that beacons spread over all of them."""
    found: dict[int, str] = {}
    for n in range(1000):
        site = f"site{n}"
        found.setdefault(cluster.port_of_slot(key_slot(KEYS.site_config(site).encode())), site)
        if len(found) == len(cluster.ports):
            return found
    raise BenchError("no site ids for every master")


def cluster_totals(cluster: Cluster, sites: Sequence[str]) -> dict[str, int]:
    services = build_services(
        Settings(redis_url=cluster.url, read_cache_seconds=0),
        registry=CollectorRegistry(),
        seed=False,
    )
    try:
        return {site: services.reading.counters(site).windows["total"].pageviews for site in sites}
    finally:
        services.store.close()


def cluster_bench(
    args: argparse.Namespace, wrk: str, configs: list[Config], workdir: Path
) -> list[ClusterResult]:
    results = []
    with local_cluster() as cluster:
        sites = sites_by_master(cluster)
        for config in configs:
            if config.skip or config.key not in ("gthread", "granian"):
                continue
            for port in cluster.ports:
                with cluster.node(port) as node:
                    node.flushall()
            setup = build_services(
                Settings(redis_url=cluster.url), registry=CollectorRegistry(), seed=False
            )
            try:
                # The demo site too: the warm-up uses it, and a server seeds it only when no
                # site is registered at all.
                setup.sites.upsert(dict(DEMO_SITE))
                for site in sites.values():
                    setup.sites.upsert({"id": site, "timezone": "UTC"})
            finally:
                setup.store.close()
            env = {**config.env, "ANALYTICS_REDIS_URL": cluster.url}
            server = Running(
                f"{config.name} (cluster)", config.command, env, workdir / f"{config.key}-c.log"
            )
            try:
                warm_up(server)
                before = cluster_totals(cluster, list(sites.values()))
                nodes = {port: cluster.node(port) for port in cluster.ports}
                cpu0 = {port: reset_stats(node) for port, node in nodes.items()}
                start = tree_cpu(server.process.pid)
                result = run_wrk(
                    wrk,
                    server.base + HIT_PATH,
                    BENCH_DIR / "beacon.lua",
                    duration=args.duration,
                    connections=args.connections,
                    threads=args.threads,
                    script_args=["0", ",".join(sites.values())],
                )
                run = RouteRun(BEACON, result, tree_cpu(server.process.pid) - start)
                figures = {port: redis_figures(node, cpu0[port]) for port, node in nodes.items()}
                for node in nodes.values():
                    node.close()
                after = cluster_totals(cluster, list(sites.values()))
            finally:
                server.stop()
            counted = {site: after[site] - before[site] for site in sites.values()}
            found = ClusterResult(config, run, sites, counted, figures)
            answered = result.requests - result.non_2xx
            if (
                result.non_2xx
                or not answered <= sum(counted.values()) <= answered + args.connections
            ):
                found.problems.append(
                    f"cluster: {answered} beacons answered, {sum(counted.values())} counted"
                )
            results.append(found)
    return results


# -- the report -------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def _verdict(met: bool) -> str:
    return " (met)" if met else " (not met)"


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(
    args: argparse.Namespace,
    results: list[ServerResult],
    skipped: list[Config],
    days: SiteDays | None,
    clusters: list[ClusterResult],
) -> str:
    out = [
        f"# bench.speed: {args.duration:g} s per run, wrk {args.threads} threads x "
        f"{args.connections} connections, {os.cpu_count()} CPUs, "
        f"load average before {args.load_average:.2f}",
        "",
    ]
    out += [f"skipped {c.name}: {c.skip}" for c in skipped]
    out += ["", "## Throughput", ""]
    rows: list[list[object]] = []
    for r in results:
        for run in r.runs.values():
            w = run.wrk
            rows.append(
                [r.config.name, run.route, w.requests, f"{w.per_second:.0f}", _ms(w.p50_us),
                 _ms(w.p99_us), w.non_2xx, w.socket_errors, f"{run.cpu_us:.0f}"]
            )  # fmt: skip
    out += _table(
        ["server", "route", "requests", "req/s", "p50 ms", "p99 ms", "non-2xx", "errors",
         "server CPU µs/req"],
        rows,
    )  # fmt: skip
    out += ["", "## Ratios to the trivial route (req/s, same server, same run)", ""]
    routes = [BEACON, *READS]
    out += _table(
        ["server", *(f"{route}/trivial" for route in routes)],
        [
            [r.config.name]
            + [
                _ratio(r.runs[route].wrk.per_second, r.runs[TRIVIAL].wrk.per_second)
                if route in r.runs and TRIVIAL in r.runs
                else "-"
                for route in routes
            ]
            for r in results
        ],
    )
    out += ["", "## Every beacon answered 204 is counted; what a hit costs Redis", ""]
    rows = []
    for r in results:
        for route, check in ((BEACON, r.beacon), (PACED, r.paced)):
            if check is None:
                continue
            rd = check.redis
            rows.append(
                [r.config.name, route, check.answered_wrk, check.answered, check.counted_total,
                 check.counted_metric, f"{check.per_hit_us(rd.command_usec / 1e6):.1f}",
                 f"{check.per_hit_us(rd.cpu_seconds):.1f}",
                 f"{100 * rd.cpu_seconds / check.seconds:.0f}" if check.seconds else "-"]
            )  # fmt: skip
    out += _table(
        ["server", "run", "2xx seen by wrk", "204 by the service", "total grew",
         "counted metric grew", "Redis µs/hit (commands)", "Redis CPU µs/hit",
         "redis-server % of a core"],
        rows,
    )  # fmt: skip
    out += ["", "## Beacon p99 at half the maximum rate", ""]
    out += _table(
        ["server", "max req/s", "target req/s", "pause per request ms", "achieved req/s",
         "p50 ms", "p99 ms", f"p99 ≤ {P99_GOAL_MS:g} ms"],
        [
            [r.config.name, f"{r.runs[BEACON].wrk.per_second:.0f}", f"{r.paced_target:.0f}",
             f"{r.paced_pause_ms:.2f}", f"{r.runs[PACED].wrk.per_second:.0f}",
             _ms(r.runs[PACED].wrk.p50_us), _ms(r.runs[PACED].wrk.p99_us),
             "yes" if r.runs[PACED].wrk.p99_us <= P99_GOAL_MS * 1000 else "no"]
            for r in results
            if PACED in r.runs
        ],
    )  # fmt: skip
    out += ["", "## Goals", ""]
    rows = []
    for r in results:
        trivial = r.runs[TRIVIAL].wrk.per_second if TRIVIAL in r.runs else 0.0
        beacon = r.runs[BEACON].wrk.per_second if BEACON in r.runs else 0.0
        slowest = min((r.runs[x].wrk.per_second for x in READS if x in r.runs), default=0.0)
        paced = r.runs.get(PACED)
        rows.append(
            [r.config.name,
             _ratio(beacon, trivial) + _verdict(bool(trivial) and beacon >= 0.5 * trivial),
             f"{beacon:.0f}" + (_verdict(beacon >= 10_000) if r.config.key == "serve" else ""),
             _ratio(slowest, trivial) + _verdict(bool(trivial) and slowest >= 0.9 * trivial),
             _ms(paced.wrk.p99_us) + _verdict(paced.wrk.p99_us <= P99_GOAL_MS * 1000)
             if paced else "-"]
        )  # fmt: skip
    out += _table(
        ["server", "1. beacon/trivial ≥ 0.5", "2. beacons/s ≥ 10,000 (serve)",
         "3. slowest read/trivial ≥ 0.9", "4. p99 ms at half rate ≤ 10"],
        rows,
    )  # fmt: skip
    out += [
        "",
        "## Capacity",
        "",
        "Redis memory after one beacon run (every beacon a new visitor):",
        "",
    ]
    out += _table(
        ["server", "counted hits", "used_memory growth", "bytes/hit", "new visitors (online set)",
         "bytes/visitor"],
        [
            [r.config.name, cap.hits, cap.memory_growth, _ratio(cap.memory_growth, cap.hits),
             cap.visitors, _ratio(cap.memory_growth, cap.visitors)]
            for r in results
            if (cap := r.capacity) is not None
        ],
    )  # fmt: skip
    first = next((r for r in results if r.capacity is not None), None)
    if first is not None and first.capacity is not None:
        hits = first.capacity.hits
        out += ["", f"The site's keys after that run ({first.config.name}), MEMORY USAGE:", ""]
        out += _table(
            ["key kind", "keys", "bytes", "bytes/hit", "expires"],
            [
                [kind, keys, size, _ratio(size, hits),
                 "within 2 min" if kind in ("dup", "rl") else "no"]
                for kind, (keys, size) in sorted(first.capacity.kinds.items())
            ],
        )  # fmt: skip
    out += ["", "Redis per read of the counters (each worker caches a document ≤ 1 s):", ""]
    out += _table(
        ["server", "reads", "Redis calls", "calls/read", "Redis µs/read (commands)"],
        [
            [r.config.name, n, reads.command_calls, f"{reads.command_calls / n:.4f}",
             f"{reads.command_usec / n:.3f}"]
            for r in results
            if (reads := r.reads_redis) is not None and (n := r.runs["counters"].wrk.requests)
        ],
    )  # fmt: skip
    if days is not None:
        out += ["", "Memory per site-day (counting and housekeeping on a simulated clock):", ""]
        out += _table(
            ["days", "hits/day", "history bytes", "history bytes/day", "site bytes kept"],
            [[days.days, days.hits_per_day, days.history_bytes,
              f"{days.history_bytes / days.days:.1f}", days.site_bytes]],
        )  # fmt: skip
    if clusters:
        out += ["", "## Redis Cluster, 3 masters (one site per master, beacons in turn)", ""]
        out += _table(
            ["server", "beacons/s", "p99 ms", "server CPU µs/req", "counted"],
            [
                [cr.config.name, f"{cr.run.wrk.per_second:.0f}", _ms(cr.run.wrk.p99_us),
                 f"{cr.run.cpu_us:.0f}", sum(cr.counted.values())]
                for cr in clusters
            ],
        )  # fmt: skip
        out += [""]
        rows = []
        for cr in clusters:
            for port, site in cr.sites.items():
                node, counted = cr.redis[port], cr.counted[site]
                rows.append(
                    [cr.config.name, port, site, counted, _ratio(node.command_usec, counted),
                     _ratio(node.cpu_seconds * 1e6, counted)]
                )  # fmt: skip
        out += _table(
            ["server", "master", "site", "counted", "Redis µs/hit (commands)", "Redis CPU µs/hit"],
            rows,
        )
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_redis(workdir: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(workdir / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bench(args: argparse.Namespace, wrk: str) -> tuple[str, list[str]]:
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="analytics-speed-") as tmp:
        workdir = Path(tmp)
        logs = workdir / "logs"
        logs.mkdir()
        with embedded_redis(workdir) as redis_server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            env.update(
                ANALYTICS_REDIS_URL=redis_server.url,
                ANALYTICS_TRUSTED_PROXIES="1",  # beacon.lua's X-Forwarded-For is the client
            )
            configs = configurations(args, env, workdir)
            client = redis.Redis.from_url(redis_server.url)
            results: list[ServerResult] = []
            with contextlib.closing(client):
                runner = Bench(args, wrk, client, logs)
                for config in configs:
                    if config.skip:
                        print(f"skipping {config.name}: {config.skip}", file=sys.stderr)
                        continue
                    print(f"measuring {config.name} ...", file=sys.stderr, flush=True)
                    try:
                        result = runner.server(config)
                    except BenchError as err:
                        problems.append(f"{config.name}: {err}")
                        continue
                    results.append(result)
                    problems += [f"{config.name}: {p}" for p in result.problems]
                client.flushall()
                print("simulating site-days ...", file=sys.stderr, flush=True)
                days = site_days(redis_server.url, QUICK_DAYS if args.quick else args.days)
            clusters: list[ClusterResult] = []
            if args.cluster:
                print("measuring on a Redis Cluster ...", file=sys.stderr, flush=True)
                try:
                    clusters = cluster_bench(args, wrk, configs, logs)
                except (BenchError, OSError, redis.RedisError, RuntimeError) as err:
                    problems.append(f"Redis Cluster: {err}")
                problems += [f"{c.config.name}: {p}" for c in clusters for p in c.problems]
        skipped = [c for c in configs if c.skip]
        return report(args, results, skipped, days, clusters), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="2 s runs: a smoke run")
    parser.add_argument("--only", choices=["serve", "gthread", "gevent", "granian"])
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="granian's and gunicorn's"
    )
    parser.add_argument(
        "--blocking-threads", type=int, default=8, help="granian's (gunicorn's --threads)"
    )
    parser.add_argument("--days", type=int, default=30, help="simulated site-days")
    parser.add_argument(
        "--cluster", action="store_true", help="also run the beacon on a 3-master Redis Cluster"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = QUICK_DURATION
    args.load_average = os.getloadavg()[0]
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench.speed: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    handle_stop_signals()  # SIGTERM and SIGINT unwind through every stop below
    try:
        text, problems = bench(args, wrk)
    except Stop:
        print("bench.speed: stopped", file=sys.stderr)
        return 130
    except (BenchError, OSError, redis.RedisError, RuntimeError) as err:
        print(f"bench.speed: {err}", file=sys.stderr)
        return 1
    print(text)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
