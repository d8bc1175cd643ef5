"""The benchmarks run end to end in quick mode: the load benchmarks (bench/load.py,
bench/servers.py, bench/speed.py) with wrk, the crash measurement (bench/crash.py) and the
pages lists under a flood of paths (bench/pages.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRK = Path("/usr/bin/wrk")

needs_wrk = pytest.mark.skipif(
    not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)"
)


def quick(module: str, timeout: float, *options: str) -> str:
    """Runs ``python -m <module> --quick``; its standard output, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
@needs_wrk
def test_the_quick_load_test_counts_and_prints_the_ratio() -> None:
    output = quick("bench.load", timeout=120)
    assert "ratio beacon/hello (req/s): " in output, output
    assert "counted pageviews: " in output, output


@pytest.mark.slow
@needs_wrk
def test_the_server_comparison_runs_both_servers_and_prints_the_ratios() -> None:
    output = quick("bench.servers", timeout=240)
    for server in ("analytics serve", "analytics web"):
        for route in ("beacon", "counters"):
            assert f"{server:<17}{route:<10}" in output, output
    assert "ratio web/serve, beacon (req/s): " in output, output
    assert "ratio web/serve, counters (req/s): " in output, output


@pytest.mark.slow
@needs_wrk
def test_the_speed_bench_of_serve_counts_every_beacon_and_prints_the_ratios() -> None:
    output = quick("bench.speed", 120, "--only", "serve")
    number = r"\d+\.\d\d"
    header = "| server | beacon/trivial | counters/trivial | widget/trivial | badge/trivial |"
    assert header in output, output
    assert re.search(rf"^\| analytics serve( \| {number}){{4}} \|$", output, re.MULTILINE), output
    # The counting check: 204 answers, total growth and the counted metric, all equal.
    for run in ("beacon", "beacon at half rate"):
        found = re.search(
            rf"^\| analytics serve \| {run} \| \d+ \| (\d+) \| (\d+) \| (\d+) \|",
            output,
            re.MULTILINE,
        )
        assert found is not None, output
        assert int(found[1]) > 0 and len(set(found.groups())) == 1, found[0]
    assert "| analytics serve | trivial |" in output, output
    assert "history bytes/day" in output, output
    for server in ("gunicorn", "granian"):
        assert f"| {server}" not in output, output  # --only


@pytest.mark.slow
def test_the_crash_bench_kills_redis_in_both_modes_and_accounts_for_every_hit() -> None:
    output = quick("bench.crash", 120)
    for mode in ("everysec", "always"):
        found = re.search(
            rf"^\| {mode} \| 1 \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
            output,
            re.MULTILINE,
        )
        assert found is not None, output
        acknowledged, counted, lost, failed, rate = map(int, found.groups())
        assert acknowledged > 0 and rate > 0, found[0]
        # What Redis holds is what it acknowledged and kept, plus at most the hits in flight
        # at the kill (written, never answered).
        kept = acknowledged - lost
        assert kept <= counted <= kept + failed, found[0]
        if mode == "always":  # synced before each answer: a kill cannot take one back
            assert lost == 0, found[0]
    assert re.search(r"^ratio always/everysec \(hits/s\): \d+\.\d\d$", output, re.MULTILINE)


def test_the_pages_bench_fills_the_lists_to_their_cap_and_keeps_the_heavy_pages_on_top() -> None:
    output = quick("bench.pages", 120)
    rows = re.findall(r"^\| [\d,]+ \| [\d,]+ \| ([\d,]+) \| [\d,]+ \| ", output, re.MULTILINE)
    assert len(rows) >= 5 and rows[-1] == "1,000", output
    assert "top 20: the heavy pages, in order" in output, output
    assert re.search(r"ratio new/listed: \d+\.\d\d$", output, re.MULTILINE), output
