"""What a crash of redis-server loses: hits acknowledged against hits counted, with the
append-only file flushed every second (``appendfsync everysec``) and at every write (``always``).

``python -m bench.crash`` (from the project folder; ``--quick`` for a smoke run) does, for each
mode, ``--rounds`` times: start a redis-server on 127.0.0.1 and a free port with AOF on and that
``appendfsync``, in a fresh folder; push hits from ``--threads`` threads through the service's
batched writer (``analytics.writer.HitWriter`` over the real hit script), each a new visitor, for
``--seconds``; SIGKILL redis-server mid-load; start it again on its AOF; then compare the hits the
writer acknowledged ("counted") with what Redis counted (the site's total pageviews), and find
each acknowledged hit that is gone (its visitor is missing from the site's online set). It prints
one line per round and a table per mode: acknowledged, counted, lost (max and mean), throughput
(acknowledged hits per second of load), and the throughput ratio always/everysec.

A SIGKILL kills the process, not the machine: what Redis had written to the AOF is in the page
cache and survives it; what ``appendfsync`` decides is how much of that reaches the disk before
the answer, which only a power cut or a kernel crash puts to the test. See bench/README.md.
Everything listens on and talks to 127.0.0.1 only; every wait is bounded; redis-server is
stopped at the end, on Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from analytics.cli import Stop, handle_stop_signals
from analytics.embedded import die_with_parent, free_port, redis_server_binary
from analytics.errors import AnalyticsError
from analytics.periods import Grain, Period
from analytics.store import HitLimits, KeySpace, Store, connect
from analytics.writer import HitWriter

MODES = ("everysec", "always")
SITE = "crash"
TOTAL = Period(Grain.TOTAL, None)
# No rate limit or reload guard holds back a hit: every hit is a new visitor on a new page.
LIMITS = HitLimits(
    1_800_000, 1_800_000, 10_000, 10, 1_000_000_000, 1_000_000_000, 1_000_000_000, 1_000_000_000
)
NOW_MS = 1_764_169_265_000
START_TIMEOUT = 30.0


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Round:
    mode: str
    acknowledged: int  # hits the writer answered "counted"
    failed: int  # hits that got an error (in flight at the kill, or after it)
    counted: int  # the site's total pageviews once Redis is back
    lost: int  # acknowledged hits missing once Redis is back
    seconds: float  # load time before the kill

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0


@contextmanager
def redis_server(workdir: Path, port: int, mode: str) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server with AOF on and ``appendfsync mode``, its files in ``workdir``, ready."""
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(workdir),
            "--appendonly", "yes",
            "--appendfsync", mode,
            "--appendfilename", "appendonly.aof",
            "--aof-use-rdb-preamble", "yes",
            "--aof-load-truncated", "yes",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(workdir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise BenchError(f"redis-server exited with {process.returncode}")
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"redis-server did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        client.close()
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load_until_killed(
    url: str, process: subprocess.Popen[bytes], threads: int, seconds: float
) -> tuple[list[str], int, float]:
    """Hits from ``threads`` threads through the hit writer; SIGKILL after ``seconds``.
    Returns the visitors of the acknowledged hits, the failed hits and the seconds of load."""
    store = Store.over(connect(url), KeySpace())
    store.sites.save({"id": SITE})
    periods = store.counts.period_keys(SITE, [TOTAL])
    writer = HitWriter(store.counts)
    acknowledged: list[list[str]] = [[] for _ in range(threads)]
    failed = [0] * threads
    stop = threading.Event()

    def push(t: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            visitor = f"v{t}-{n}"
            write = store.counts.hit_write(
                SITE,
                periods,
                kind="pageview",
                visitor=visitor,
                network=f"n{t}",
                page=f"p{n}",
                now_ms=NOW_MS + n,
                limits=LIMITS,
            )
            try:
                outcome = writer.write(write)
            except AnalyticsError:
                failed[t] += 1
                continue
            if outcome != "counted":
                raise BenchError(f"a hit was {outcome}, not counted")
            acknowledged[t].append(visitor)

    pushers = [threading.Thread(target=push, args=(t,), daemon=True) for t in range(threads)]
    started = time.monotonic()
    for pusher in pushers:
        pusher.start()
    try:
        time.sleep(seconds)
        os.kill(process.pid, signal.SIGKILL)
        loaded = time.monotonic() - started
        process.wait(START_TIMEOUT)
    finally:
        stop.set()
        for pusher in pushers:
            pusher.join(START_TIMEOUT)
        writer.close()
        store.conn.client.close()
    return [v for visitors in acknowledged for v in visitors], sum(failed), loaded


def one_round(mode: str, threads: int, seconds: float, parent: Path | None) -> Round:
    workdir = Path(tempfile.mkdtemp(prefix="analytics-crash-", dir=parent))
    try:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        with redis_server(workdir, port, mode) as process:
            visitors, failed, loaded = load_until_killed(url, process, threads, seconds)
        with redis_server(workdir, port, mode):
            store = Store.over(connect(url), KeySpace())
            _, [total] = store.counts.read_windows(SITE, [TOTAL], 0)
            online = store.conn.keys.online(SITE)
            client = store.conn.client
            lost = 0
            for first in range(0, len(visitors), 1000):
                scores = client.zmscore(online, visitors[first : first + 1000])
                lost += sum(score is None for score in scores)
            client.close()
        return Round(mode, len(visitors), failed, total.pageviews, lost, loaded)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(rounds: list[Round]) -> str:
    lines = [
        "| appendfsync | round | acknowledged | counted | lost | failed | hits/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rounds:
        n = sum(1 for other in rounds[: rounds.index(r) + 1] if other.mode == r.mode)
        lines.append(
            f"| {r.mode} | {n} | {r.acknowledged} | {r.counted} | {r.lost} | {r.failed} "
            f"| {r.rate:.0f} |"
        )
    lines += [
        "",
        "| appendfsync | rounds | acknowledged (mean) | counted (mean) | lost max | lost mean "
        "| hits/s (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rates: dict[str, float] = {}
    for mode in MODES:
        of_mode = [r for r in rounds if r.mode == mode]
        if not of_mode:
            continue
        rates[mode] = statistics.mean(r.rate for r in of_mode)
        lines.append(
            f"| {mode} | {len(of_mode)} "
            f"| {statistics.mean(r.acknowledged for r in of_mode):.0f} "
            f"| {statistics.mean(r.counted for r in of_mode):.0f} "
            f"| {max(r.lost for r in of_mode)} "
            f"| {statistics.mean(r.lost for r in of_mode):.1f} "
            f"| {rates[mode]:.0f} |"
        )
    if rates.get("everysec"):
        ratio = rates.get("always", 0.0) / rates["everysec"]
        lines += ["", f"ratio always/everysec (hits/s): {ratio:.2f}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="crashes per mode (5)")
    parser.add_argument("--seconds", type=float, default=3.0, help="load before each kill (3)")
    parser.add_argument("--threads", type=int, default=16, help="threads pushing hits (16)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where Redis's folders go, on the disk to measure (the system's temporary folder)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 0.5 s per mode")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    if args.rounds < 1 or not 0 < args.seconds <= 60 or not 1 <= args.threads <= 256:
        parser.error("--rounds from 1, --seconds up to 60, --threads from 1 to 256")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handle_stop_signals()
    # The store logs each failed write; after each kill they are the point, not news.
    logging.getLogger("analytics.store").setLevel(logging.CRITICAL)
    print(
        f"bench.crash: {args.rounds} rounds per mode, {args.seconds:g} s of load from "
        f"{args.threads} threads before each SIGKILL, {os.cpu_count()} CPUs, "
        f"load average before {os.getloadavg()[0]:.2f}"
    )
    rounds: list[Round] = []
    try:
        for _ in range(args.rounds):
            for mode in MODES:  # interleaved: a busier moment of the machine hits both
                rounds.append(one_round(mode, args.threads, args.seconds, args.dir))
    except (BenchError, OSError, redis.RedisError) as err:
        print(f"bench.crash: {err}", file=sys.stderr)
        return 1
    except Stop:
        print("bench.crash: stopped", file=sys.stderr)
        return 130
    print(report(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
