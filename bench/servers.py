"""The production web tier against ``analytics serve``, same run, same Redis, same load.

    python -m bench.servers [--duration S] [--quick]

Starts an embedded Redis, then in turn:

- ``analytics serve`` (the real command: ``ANALYTICS_WORKERS`` worker processes, default one
  per CPU, each with ``ANALYTICS_THREADS`` threads, its scheduler in-process), and
- ``analytics web`` (the production web tier: the same workers, plus nothing else: in
  production the scheduler runs beside it as its own process).

Against each, wrk runs the beacon (bench/beacon.lua: a new visitor on a new page per
request) and the counters read (``GET /api/v1/sites/demo/counters``, answered from each
process's read cache of at most ``read_cache_seconds`` as in production). Prints req/s,
latency and the server's CPU (all its processes) per request, the ratio web/serve for
each route, and checks that every beacon the servers answered 204 was counted.
Everything talks to 127.0.0.1 only; every run and wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import redis

from analytics.embedded import EmbeddedRedis, die_with_parent, free_port
from bench.load import (
    BENCH_DIR,
    BROWSER_UA,
    ROOT,
    BenchError,
    WrkResult,
    http,
    process_cpu,
    run_wrk,
    total_pageviews,
)

BIN = Path(sys.executable).parent
COUNTERS_PATH = "/api/v1/sites/demo/counters"
START_TIMEOUT = 30.0


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``, whichever of its threads started them."""
    kids: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # a thread or process that has just exited
            kids += [int(kid) for kid in listing.read_text().split()]
    return kids


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its live descendants (a master and its workers)."""
    total = 0.0
    with contextlib.suppress(OSError):  # a process that has just exited
        total += process_cpu(pid)
    for kid in children(pid):
        total += tree_cpu(kid)
    return total


@dataclass(frozen=True)
class Figures:
    server: str
    route: str
    wrk: WrkResult
    cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.wrk.requests if self.wrk.requests else 0.0


class Running:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [part.replace("{port}", str(self.port)) for part in command],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own process group, which stop() ends whole (workers included); a
                # Ctrl-C in the terminal reaches the bench alone, which then stops it.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise BenchError(f"{self.name} exited:\n{tail}")
            try:
                if http("GET", f"{self.base}/readyz")[0] == 200:
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise BenchError(f"{self.name} did not become ready in {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """SIGTERM, then after 30 s SIGKILL; then any process left in its group is killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def warm_up(server: Running) -> None:
    """Beacons and reads on fresh connections, so every worker has loaded the site and the
    scripts before the runs (their first-call costs stay out of the figures)."""
    for i in range(40):
        body = json.dumps({"site": "demo", "url": f"https://example.vn/warm-up/{i}"}).encode()
        headers = {
            "Content-Type": "text/plain;charset=UTF-8",
            "User-Agent": BROWSER_UA,
            "X-Forwarded-For": f"192.0.2.{i + 1}",
            "Connection": "close",
        }
        if http("POST", f"{server.base}/api/v1/hit", body, headers)[0] != 204:
            raise BenchError(f"{server.name}: a warm-up beacon was not counted")
        http("GET", f"{server.base}{COUNTERS_PATH}", headers={"Connection": "close"})


def measure(server: Running, args: argparse.Namespace, wrk: str) -> list[Figures]:
    options = {"duration": args.duration, "connections": args.connections, "threads": 2}
    figures = []
    for route, path, script in (
        ("beacon", "/api/v1/hit", "beacon.lua"),
        ("counters", COUNTERS_PATH, "report.lua"),
    ):
        before = tree_cpu(server.process.pid)
        result = run_wrk(wrk, server.base + path, BENCH_DIR / script, **options)
        figures.append(Figures(server.name, route, result, tree_cpu(server.process.pid) - before))
    return figures


def bench(args: argparse.Namespace, wrk: str) -> tuple[list[Figures], list[str]]:
    problems: list[str] = []
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="analytics-servers-") as tmp:
        workdir = Path(tmp)
        redis_server = EmbeddedRedis(workdir / "redis")
        redis_server.start()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
            env.update(
                ANALYTICS_REDIS_URL=redis_server.url,
                ANALYTICS_TRUSTED_PROXIES="1",  # beacon.lua's X-Forwarded-For is the client
                ANALYTICS_DATA_DIR=str(workdir / "data"),
            )
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            if args.workers:
                env["ANALYTICS_WORKERS"] = str(args.workers)
            servers = {
                "analytics serve": [str(BIN / "analytics"), "serve", "--port", "{port}"],
                "analytics web": [str(BIN / "analytics"), "web", "--port", "{port}"],
            }
            client = redis.Redis.from_url(redis_server.url)
            for name, command in servers.items():
                # Each server starts on an empty Redis: beacon.lua sends the same visitors and
                # pages every run, which a second run would find to be reloads.
                client.flushall()
                log = workdir / f"{name.split()[-1]}.log"
                server = Running(name, command, env, log)
                try:
                    warm_up(server)
                    time.sleep(1.2)  # past the read cache
                    before = total_pageviews(server.base)
                    figures = measure(server, args, wrk)
                    time.sleep(1.2)  # past the read cache
                    counted = total_pageviews(server.base) - before
                finally:
                    server.stop()
                results += figures
                beacon = figures[0].wrk
                answered = beacon.requests - beacon.non_2xx
                if counted < answered:
                    problems.append(f"{name}: {counted} counted of {answered} beacons answered")
                for f in figures:
                    if f.wrk.non_2xx or f.wrk.requests == 0:
                        problems.append(f"{name} {f.route}: {f.wrk.non_2xx} non-2xx answers")
        finally:
            redis_server.stop()
    return results, problems


def report(results: list[Figures], args: argparse.Namespace) -> str:
    workers = args.workers or os.cpu_count()
    lines = [
        f"analytics serve vs analytics web ({workers} workers each): "
        f"{args.duration:g} s per run, wrk 2 threads x {args.connections} connections, "
        f"{os.cpu_count()} CPUs",
        "",
        f"{'server':<17}{'route':<10}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server CPU µs/req':>19}",
    ]
    for f in results:
        w = f.wrk
        lines.append(
            f"{f.server:<17}{f.route:<10}{w.requests:>9}{w.per_second:>9.0f}"
            f"{w.p50_us / 1000:>9.2f}{w.p99_us / 1000:>9.2f}{f.cpu_us_per_request:>19.0f}"
        )
    lines.append("")
    by = {(f.server, f.route): f.wrk.per_second for f in results}
    for route in ("beacon", "counters"):
        base = by.get(("analytics serve", route), 0.0)
        ratio = by.get(("analytics web", route), 0.0) / base if base else 0.0
        lines.append(f"ratio web/serve, {route} (req/s): {ratio:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="web workers of each (0: per CPU)")
    parser.add_argument("--quick", action="store_true", help="2 s runs: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 2.0
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench.servers: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    try:
        results, problems = bench(args, wrk)
    except (BenchError, OSError) as err:
        print(f"bench.servers: {err}", file=sys.stderr)
        return 1
    print(report(results, args))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
