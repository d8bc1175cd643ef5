"""Load test of the beacon: wrk against the service as ``analytics serve`` runs it.

``python -m bench.load`` (from the project folder) starts an embedded Redis (or
uses ``--redis-url``), starts bench/server.py in a subprocess (the app and the
waitress server of ``analytics serve``, plus ``GET /bench/hello``, an empty 204),
then runs wrk twice against it:

1. ``GET /bench/hello``: the baseline, everything but the counting (waitress,
   Flask routing, the metrics hooks);
2. ``POST /api/v1/hit`` with bench/beacon.lua: a browser-like beacon of site
   ``demo``, a new page and a new X-Forwarded-For address on every request.

It then checks that the demo site's ``total.pageviews`` grew, reads Redis's
``INFO commandstats`` (reset before the beacon run), prints one table and exits
0, or 1 when a check failed. See bench/README.md for how to read the figures.
Everything listens on and talks to 127.0.0.1 only; every step has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import IO, Any

import redis

from analytics.cli import Stop, handle_stop_signals
from analytics.embedded import EmbeddedRedis, die_with_parent
from analytics.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
HELLO_PATH = "/bench/hello"
HIT_PATH = "/api/v1/hit"
SITE = "demo"
QUICK_DURATION = 2.0
HTTP_TIMEOUT = 5.0
SERVER_START_TIMEOUT = 30.0
WRK_SLACK = 30.0  # seconds a wrk run may take beyond its duration before it is killed
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
RATIO_LABEL = "ratio beacon/hello (req/s)"
# Commands the bench itself sends to Redis, left out of the service's figures.
BENCH_COMMANDS = frozenset({"info", "config"})


class BenchError(Exception):
    """A step of the benchmark failed; the message says which."""


# -- wrk ------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """What the ``done()`` of bench/report.lua printed; times in microseconds."""

    requests: int
    duration_us: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    non_2xx: int
    socket_errors: int
    cpu_seconds: float  # wrk's own CPU time (user + system)

    @property
    def per_second(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0


_WRK_LINE = re.compile(r"^WRK_RESULT (.*)$", re.MULTILINE)


def parse_wrk(output: str, cpu_seconds: float = 0.0) -> WrkResult:
    """The figures of the ``WRK_RESULT key=value ...`` line of wrk's output."""
    found = _WRK_LINE.search(output)
    if found is None:
        raise BenchError(f"wrk printed no WRK_RESULT line:\n{output}")
    values = dict(item.split("=", 1) for item in found.group(1).split())
    n = {key: int(float(value)) for key, value in values.items()}
    return WrkResult(
        requests=n["requests"],
        duration_us=n["duration_us"],
        p50_us=n["p50_us"],
        p90_us=n["p90_us"],
        p99_us=n["p99_us"],
        max_us=n["max_us"],
        non_2xx=n["errors_status"],
        socket_errors=sum(n[f"errors_{kind}"] for kind in ("connect", "read", "write", "timeout")),
        cpu_seconds=cpu_seconds,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    duration: float,
    connections: int,
    threads: int,
    script_args: Sequence[str] = (),
) -> WrkResult:
    """One wrk run; ``script_args`` reach the script's ``init(args)``."""
    command = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration))}s",
        "--timeout=5s",
        f"--script={script}",
        url,
    ]
    if script_args:
        command += ["--", *script_args]
    before = _children_cpu()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration + WRK_SLACK,
            preexec_fn=die_with_parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + WRK_SLACK:.0f} s") from None
    if done.returncode != 0:
        raise BenchError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, _children_cpu() - before)


# -- the server subprocess ------------------------------------------------------


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """bench/server.py in a subprocess; its log goes to ``log_path``."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.base = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> str:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.server", "--host", HOST, "--port", "0"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            preexec_fn=die_with_parent,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline().decode().strip()
                if line.startswith("listening on "):
                    self.base = line.removeprefix("listening on ")
                    return self.base
                if not line and self.process.poll() is not None:
                    break
            elif self.process.poll() is not None:
                break
        raise BenchError(f"the bench server did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


# -- HTTP -----------------------------------------------------------------------


def http(
    method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        return int(response.status), bytes(response.read())


def total_pageviews(base: str) -> int:
    _, body = http("GET", f"{base}/api/v1/sites/{SITE}/counters")
    return int(json.loads(body)["windows"]["total"]["pageviews"])


_OUTCOME = re.compile(r'^analytics_hits_total\{outcome="([a-z_]+)"\} ([0-9.e+]+)$', re.MULTILINE)


def hit_outcomes(base: str) -> dict[str, int]:
    """The service's own count of beacons by outcome, from /metrics."""
    _, body = http("GET", f"{base}/metrics")
    return {name: int(float(value)) for name, value in _OUTCOME.findall(body.decode())}


def warm_up(base: str) -> None:
    """A few requests of each kind, so that first-call costs stay out of the runs."""
    for i in range(20):
        status, _ = http("GET", base + HELLO_PATH)
        if status != 204:
            raise BenchError(f"GET {HELLO_PATH} answered {status}")
        body = json.dumps({"site": SITE, "url": f"https://example.vn/warm-up/{i}"}).encode()
        status, _ = http(
            "POST",
            base + HIT_PATH,
            body,
            {
                "Content-Type": "text/plain;charset=UTF-8",
                "User-Agent": BROWSER_UA,
                "X-Forwarded-For": f"192.0.2.{i + 1}",
            },
        )
        if status != 204:
            raise BenchError(f"POST {HIT_PATH} answered {status}")
    total_pageviews(base)


# -- Redis ----------------------------------------------------------------------


def script_commands() -> frozenset[str]:
    """The commands the hit script calls: Redis counts them once more inside EVALSHA's time."""
    source = (
        importlib_resources.files("analytics.store").joinpath("lua", "hit.lua").read_text("utf-8")
    )
    return frozenset(c.lower() for c in re.findall(r"redis\.call\(\s*'(\w+)'", source))


@dataclass(frozen=True)
class RedisFigures:
    evalsha_calls: int
    evalsha_usec: int
    evalsha_usec_per_call: float
    command_usec: int  # every command the service sent, the commands run by scripts not twice
    command_calls: int  # calls of those commands
    cpu_seconds: float  # the redis-server process: user + system, every thread


def redis_cpu(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def redis_figures(client: redis.Redis, cpu_before: float) -> RedisFigures:
    stats: dict[str, Any] = client.info("commandstats")
    inner = script_commands()
    evalsha = stats.get("cmdstat_evalsha", {})
    command_usec = command_calls = 0
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_").split("|", 1)[0].lower()
        if name not in inner and name not in BENCH_COMMANDS:
            command_usec += int(value["usec"])
            command_calls += int(value["calls"])
    return RedisFigures(
        evalsha_calls=int(evalsha.get("calls", 0)),
        evalsha_usec=int(evalsha.get("usec", 0)),
        evalsha_usec_per_call=float(evalsha.get("usec_per_call", 0.0)),
        command_usec=command_usec,
        command_calls=command_calls,
        cpu_seconds=redis_cpu(client) - cpu_before,
    )


@contextlib.contextmanager
def redis_url_for(args: argparse.Namespace, workdir: Path) -> Iterator[str]:
    if args.redis_url:
        yield args.redis_url
        return
    embedded = EmbeddedRedis(workdir / "redis")
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


# -- the run --------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    wrk: WrkResult
    server_cpu: float  # seconds of the server process during the run
    redis_cpu: float  # seconds of redis-server during the run


@dataclass(frozen=True)
class Report:
    hello: Run
    beacon: Run
    redis: RedisFigures
    counted: int  # growth of the demo site's total.pageviews over the beacon run
    outcomes: dict[str, int]  # growth of analytics_hits_total by outcome
    queue_warnings: int  # "Task queue depth" lines waitress logged
    load_average: float  # of the machine over the minute before the runs


def _per_request_us(seconds: float, requests: int) -> float:
    return seconds * 1e6 / requests if requests else 0.0


def _core_percent(seconds: float, run: Run) -> float:
    wall = run.wrk.duration_us / 1e6
    return 100.0 * seconds / wall if wall else 0.0


_CPU_COLUMNS: tuple[tuple[str, Callable[[Run], float]], ...] = (
    ("server", lambda run: run.server_cpu),
    ("wrk", lambda run: run.wrk.cpu_seconds),
    ("redis-server", lambda run: run.redis_cpu),
)


def format_report(report: Report, args: argparse.Namespace) -> str:
    hello, beacon, rd = report.hello, report.beacon, report.redis
    ms = 1000.0
    lines = [
        f"visit-analytics load test: {args.duration:g} s per run, wrk {args.threads} threads x "
        f"{args.connections} connections, waitress {args.server_threads} threads, "
        f"{os.cpu_count()} CPUs (load average before: {report.load_average:.2f})",
        "",
        f"{'run':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'non-2xx':>9}{'errors':>8}{'server CPU µs/req':>19}",
    ]
    for run in (hello, beacon):
        w = run.wrk
        lines.append(
            f"{run.name:<22}{w.requests:>9}{w.per_second:>9.0f}{w.p50_us / ms:>9.2f}"
            f"{w.p90_us / ms:>9.2f}{w.p99_us / ms:>9.2f}{w.non_2xx:>9}{w.socket_errors:>8}"
            f"{_per_request_us(run.server_cpu, w.requests):>19.0f}"
        )
    ratio = beacon.wrk.per_second / hello.wrk.per_second if hello.wrk.per_second else 0.0
    sent = beacon.wrk.requests
    counted_share = 100.0 * report.counted / sent if sent else 0.0
    command_us = _per_request_us(rd.command_usec / 1e6, report.counted)
    cpu_us = _per_request_us(rd.cpu_seconds, report.counted)
    outcomes = ", ".join(f"{k}={v}" for k, v in sorted(report.outcomes.items()) if v) or "none"
    lines += [
        "",
        f"{RATIO_LABEL}: {ratio:.2f}",
        "CPU, % of one core, hello | beacon: "
        + ", ".join(
            f"{name} {_core_percent(getter(hello), hello):.0f} | "
            f"{_core_percent(getter(beacon), beacon):.0f}"
            for name, getter in _CPU_COLUMNS
        ),
        f"Redis evalsha (hit script): calls={rd.evalsha_calls} "
        f"usec_per_call={rd.evalsha_usec_per_call:.2f}",
        f"Redis µs per counted hit: commands {command_us:.1f}, redis-server CPU {cpu_us:.1f}",
        f"counted pageviews: {report.counted} of {sent} beacons sent ({counted_share:.1f}%); "
        f"outcomes: {outcomes}",
        f"waitress 'Task queue depth' warnings logged: {report.queue_warnings}",
    ]
    return "\n".join(lines)


def check(report: Report) -> list[str]:
    """What makes the run a failure (exit 1)."""
    problems = []
    if report.counted <= 0:
        problems.append("the beacon run counted no pageview")
    for run in (report.hello, report.beacon):
        if run.wrk.requests == 0:
            problems.append(f"{run.name}: no request completed")
        if run.wrk.non_2xx:
            problems.append(f"{run.name}: {run.wrk.non_2xx} answers were not 2xx")
    return problems


def server_env(args: argparse.Namespace, redis_url: str, key_prefix: str | None) -> dict[str, str]:
    """The environment of ``analytics serve``, plus the settings of the bench."""
    env = dict(os.environ)
    env.update(
        ANALYTICS_REDIS_URL=redis_url,
        # X-Forwarded-For of beacon.lua is the client address: one trusted proxy (wrk).
        ANALYTICS_TRUSTED_PROXIES="1",
        ANALYTICS_THREADS=str(args.server_threads),
    )
    if key_prefix is not None:
        env["ANALYTICS_KEY_PREFIX"] = key_prefix
    return env


def measure(
    args: argparse.Namespace, wrk: str, base: str, client: redis.Redis, server: Server
) -> Report:
    """The two wrk runs against a started server, and what they did to the counters."""
    settings = Settings.load(server.env)
    options: dict[str, Any] = {
        "duration": args.duration,
        "connections": args.connections,
        "threads": args.threads,
    }
    load_average = os.getloadavg()[0]

    cpu, redis_before = process_cpu(server.pid), redis_cpu(client)
    hello_wrk = run_wrk(wrk, base + HELLO_PATH, BENCH_DIR / "report.lua", **options)
    hello = Run(
        f"GET {HELLO_PATH}",
        hello_wrk,
        server_cpu=process_cpu(server.pid) - cpu,
        redis_cpu=redis_cpu(client) - redis_before,
    )

    time.sleep(settings.read_cache_seconds + 0.1)  # past the read cache of the warm-up's read
    pageviews = total_pageviews(base)
    outcomes = hit_outcomes(base)
    client.config_resetstat()
    cpu, redis_before = process_cpu(server.pid), redis_cpu(client)
    beacon_wrk = run_wrk(wrk, base + HIT_PATH, BENCH_DIR / "beacon.lua", **options)
    server_cpu = process_cpu(server.pid) - cpu
    figures = redis_figures(client, redis_before)
    beacon = Run(f"POST {HIT_PATH}", beacon_wrk, server_cpu, figures.cpu_seconds)

    time.sleep(settings.read_cache_seconds + 0.1)
    counted = total_pageviews(base) - pageviews
    grown = {k: v - outcomes.get(k, 0) for k, v in hit_outcomes(base).items()}
    return Report(
        hello=hello,
        beacon=beacon,
        redis=figures,
        counted=counted,
        outcomes=grown,
        queue_warnings=0,
        load_average=load_average,
    )


def bench(args: argparse.Namespace, wrk: str) -> Report:
    with tempfile.TemporaryDirectory(prefix="analytics-bench-") as tmp:
        workdir = Path(tmp)
        # On a Redis of one's own, keys go under a prefix of their own, removed at the end.
        key_prefix = f"bench-{secrets.token_hex(4)}" if args.redis_url else None
        with redis_url_for(args, workdir) as redis_url:
            client = redis.Redis.from_url(redis_url, socket_timeout=HTTP_TIMEOUT)
            server = Server(server_env(args, redis_url, key_prefix), workdir / "server.log")
            try:
                base = server.start()
                warm_up(base)
                report = measure(args, wrk, base, client, server)
            finally:
                server.stop()
                if key_prefix is not None:
                    delete_prefix(client, key_prefix)
                client.close()
            log = server.log_path.read_text(errors="replace")
            return dataclasses.replace(report, queue_warnings=log.count("Task queue depth"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--server-threads",
        type=int,
        default=Settings().threads,
        help="waitress worker threads (default: the threads setting's default)",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a Redis to use instead of an embedded one (its stats are reset; keys under "
        "a bench-* prefix are removed at the end)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"runs of {QUICK_DURATION:g} s (a smoke test)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = QUICK_DURATION
    if args.duration < 1:
        parser.error("--duration must be at least 1 second")
    if args.threads < 1 or args.connections < args.threads:
        parser.error("wrk needs --threads >= 1 and --connections >= --threads")
    if not 1 <= args.server_threads <= 256:
        parser.error("--server-threads must be between 1 and 256")
    if args.redis_url and "+cluster" in args.redis_url:
        parser.error("--redis-url: the bench reads INFO of one Redis; no cluster URL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench.load: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    handle_stop_signals()
    try:
        report = bench(args, wrk)
    except (BenchError, OSError, redis.RedisError) as err:
        print(f"bench.load: {err}", file=sys.stderr)
        return 1
    except Stop:
        print("bench.load: stopped", file=sys.stderr)
        return 130
    print(format_report(report, args))
    problems = check(report)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
