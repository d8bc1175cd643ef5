"""Redis memory under a flood of distinct page paths and referrer hosts: flat once the lists are
full, with the heavy pages still on top.

``python -m bench.pages`` (from the project folder; ``--quick`` for a smoke run) starts a
redis-server on 127.0.0.1 and a free port (no persistence), registers one site, and counts
``--paths`` pageviews through the real hit script (store/lua/hit.lua, in calls of 256 hits as
the writer sends them): each on a path never seen before and from a referrer host never seen
before, with 1 % of the views going to 20 heavy pages and hosts. Visitors and networks come from
small fixed pools, so that nothing but the pages and referrers lists could grow with the paths.

It prints, at checkpoints, the pageviews counted, Redis ``used_memory``, the entries and bytes
(``MEMORY USAGE``) of the total's pages list, and the growth of ``used_memory`` since the first
checkpoint past the cap: flat is 1.00. Then the top of the total's pages list against the true
counts of the heavy pages, and the speed of the hit script on new paths (every view evicts)
against a baseline measured in the same run: the same number of views on a page already listed.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from analytics.embedded import free_port
from analytics.periods import TOTAL, Grain, Period
from analytics.sites import Site
from analytics.store import MAX_HITS_PER_CALL, HitLimits, HitWrite, KeySpace, Store, connect
from bench.crash import redis_server

SITE = "pages"
NOW_MS = 1_764_169_265_000
DAY = Period(Grain.DAY, date(2026, 11, 26))
HEAVY = 20
VISITORS = 1_000
NETWORKS = 10


def limits(max_pages: int, max_referrers: int) -> HitLimits:
    """No limit or reload guard holds a view back."""
    big = 1_000_000_000
    return HitLimits(
        session_timeout_ms=1_800_000,
        online_keep_ms=1_800_000,
        reload_ms=0,
        new_visitors=big,
        visits=big,
        pageviews=big,
        heartbeats=big,
        max_pages=max_pages,
        max_referrers=max_referrers,
    )


def views(total: int, start: int = 0) -> Iterator[tuple[str, str]]:
    """(path, referrer host): one view in ten on a heavy page from a heavy host, page i getting
    2 * HEAVY - i shares of those; the others new."""
    shares = [2 * HEAVY - i for i in range(HEAVY)]
    weights = list(itertools.chain.from_iterable([i] * s for i, s in enumerate(shares)))
    for n in range(start, start + total):
        if n % 10 == 0:
            i = weights[(n // 10) % len(weights)]
            yield f"/bai-viet/{i:02d}", f"nguon-{i:02d}.vn"
        else:
            yield f"/mot-lan/{n:08d}", f"host-{n:08d}.example"


def count(
    store: Store, hit_limits: HitLimits, batch: list[tuple[str, str]], seq: Iterator[int]
) -> None:
    keys = store.counts.period_keys(SITE, [DAY, TOTAL])
    writes: list[HitWrite] = []
    for n, (path, host) in enumerate(batch):
        visitor = f"v{n % VISITORS}"
        writes.append(
            store.counts.hit_write(
                SITE,
                keys,
                kind="pageview",
                visitor=visitor,
                network=f"n{n % NETWORKS}",
                page="p",
                now_ms=NOW_MS,
                limits=hit_limits,
                path=path,
                referrer=host,
            )
        )
    calls = store.counts.calls(writes, "bench", lambda: next(seq))
    for reply in store.counts.send([call for call, _ in calls]):
        if not isinstance(reply, list) or set(reply) != {"counted"}:
            raise SystemExit(f"a call did not count: {reply!r}")


def run(paths: int, max_pages: int, max_referrers: int, checkpoints: int) -> int:
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="bench-pages-") as folder,
        redis_server(Path(folder), port, "no"),
    ):
        client = connect(f"redis://127.0.0.1:{port}/0")
        store = Store.over(client, KeySpace())
        store.sites.save(Site.new(SITE).to_dict())
        hit_limits = limits(max_pages, max_referrers)
        seq = itertools.count(1)
        pages_key = store.conn.keys.pages(SITE, TOTAL)
        sent: Counter[str] = Counter()
        step = max(MAX_HITS_PER_CALL, paths // checkpoints // MAX_HITS_PER_CALL * MAX_HITS_PER_CALL)
        print(f"{paths:,} pageviews, caps {max_pages:,} pages / {max_referrers:,} referrers")
        print("| pageviews | used_memory | pages listed | pages list bytes | growth |")
        print("| --- | --- | --- | --- | --- |")
        flat_from: int | None = None
        done = 0
        started = time.perf_counter()
        while done < paths:
            batch = list(views(min(step, paths - done), done))
            sent.update(path for path, _ in batch)
            for i in range(0, len(batch), MAX_HITS_PER_CALL):
                count(store, hit_limits, batch[i : i + MAX_HITS_PER_CALL], seq)
            done += len(batch)
            used = int(client.info("memory")["used_memory"])
            listed = int(client.zcard(pages_key))
            list_bytes = int(client.memory_usage(pages_key) or 0)
            if flat_from is None and listed >= max_pages:
                flat_from = used
            growth = f"{used / flat_from:.2f}" if flat_from else "(filling)"
            print(f"| {done:,} | {used:,} | {listed:,} | {list_bytes:,} | {growth} |")
        elapsed = time.perf_counter() - started
        print(f"counted {done:,} pageviews in {elapsed:.1f} s ({done / elapsed:,.0f}/s)")

        top = store.lists.top("pages", SITE, TOTAL, HEAVY)
        right = [f"/bai-viet/{i:02d}" for i in range(HEAVY)]
        over = max(views_ - sent[path] for path, views_ in top)
        least = int(client.zrange(pages_key, 0, 0, withscores=True)[0][1])
        print(
            f"top {HEAVY}: "
            + ("the heavy pages, in order" if [p for p, _ in top] == right else "WRONG")
            + f"; most over its true count by {over} (bound: least count {least})"
        )

        # Speed: views that evict against views of a listed page, same count, same run.
        sample = 20 * MAX_HITS_PER_CALL
        evicting = list(views(sample, paths + 1))
        evicting = [(p, h) for p, h in evicting if p.startswith("/mot-lan/")]
        listed_page = [("/bai-viet/00", "nguon-00.vn")] * len(evicting)
        rates: dict[str, float] = {"listed": 0.0, "new": 0.0}
        for _ in range(3):  # alternated, the best of three each
            for name, batch in (("listed", listed_page), ("new", evicting)):
                t0 = time.perf_counter()
                for i in range(0, len(batch), MAX_HITS_PER_CALL):
                    count(store, hit_limits, batch[i : i + MAX_HITS_PER_CALL], seq)
                rates[name] = max(rates[name], len(batch) / (time.perf_counter() - t0))
        print(
            f"hit script: {rates['listed']:,.0f} views/s on a listed page, "
            f"{rates['new']:,.0f} on new paths; "
            f"ratio new/listed: {rates['new'] / rates['listed']:.2f}"
        )
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--paths", type=int, default=1_000_000, help="pageviews to send")
    parser.add_argument("--max-pages", type=int, default=10_000)
    parser.add_argument("--max-referrers", type=int, default=1_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 30,000 views, caps 1,000/100"
    )
    args = parser.parse_args(argv)
    if args.quick:
        return run(30_000, 1_000, 100, 5)
    return run(args.paths, args.max_pages, args.max_referrers, args.checkpoints)


if __name__ == "__main__":
    sys.exit(main())
