"""Wrong admin tokens take as long whether they share no prefix with the token or all but a byte.

    python -m bench.admin_auth [--rounds N]

Two measurements, each interleaving the cases round by round so that drift in the machine's
speed falls on all of them alike, and each quoting medians:

- the comparison alone (``token_matches``), a million-fold-repeatable figure in nanoseconds;
- the whole 401 answer through the app on an embedded Redis (audit entry and failure count
  included), each request from a new network so that the rate limit stays out of the way.

Prints each case's median and its ratio to the no-shared-prefix case.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.auth import token_matches
from analytics.embedded import EmbeddedRedis
from analytics.settings import Settings

TOKEN = "k" * 20 + "0123456789abcdef0123456789abcdef0123456789ab"  # 64 characters
CASES = {
    "no byte matches": "X" * 64,
    "half matches": TOKEN[:32] + "X" * 32,
    "all but the last byte": TOKEN[:-1] + "X",
    "shorter (a prefix)": TOKEN[:40],
}


def compare(wrong: str) -> None:
    token_matches(wrong, TOKEN)


def medians(
    cases: Mapping[str, Callable[[], None]], rounds: int, per_round: int
) -> dict[str, float]:
    """Median seconds per call of each case, the cases interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            samples[name].append((time.perf_counter() - start) / per_round)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, figures: dict[str, float], unit: str, scale: float) -> None:
    base = figures["no byte matches"]
    print(title)
    for name, seconds in figures.items():
        print(f"  {name:<24} {seconds * scale:10.2f} {unit}   ratio {seconds / base:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    comparisons = {name: partial(compare, wrong) for name, wrong in CASES.items()}
    report(
        "comparison alone (median per call):",
        medians(comparisons, args.rounds, 2000),
        "ns",
        1e9,
    )

    with tempfile.TemporaryDirectory() as workdir:
        redis_server = EmbeddedRedis(Path(workdir) / "redis")
        redis_server.start()
        try:
            settings = Settings(redis_url=redis_server.url, admin_token=TOKEN)
            client = create_app(settings, registry=CollectorRegistry()).test_client()
            networks = ipaddress.IPv4Network("10.0.0.0/8").hosts()

            def answer(wrong: str) -> None:
                response = client.get(
                    "/api/v1/admin/sites",
                    headers={"Authorization": f"Bearer {wrong}"},
                    environ_base={"REMOTE_ADDR": str(next(networks))},
                )
                assert response.status_code == 401, response.status_code

            requests = {name: partial(answer, wrong) for name, wrong in CASES.items()}
            report(
                "whole 401 answer (median per request):",
                medians(requests, max(args.rounds // 2, 10), 5),
                "µs",
                1e6,
            )
        finally:
            redis_server.stop()


if __name__ == "__main__":
    main()
