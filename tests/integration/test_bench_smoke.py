"""The load benchmarks (bench/load.py, bench/servers.py) run end to end in quick mode, with wrk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WRK = Path("/usr/bin/wrk")


@pytest.mark.slow
@pytest.mark.skipif(not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)")
def test_the_quick_load_test_counts_and_prints_the_ratio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.load", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ratio beacon/hello (req/s): " in result.stdout, output
    assert "counted pageviews: " in result.stdout, output


@pytest.mark.slow
@pytest.mark.skipif(not WRK.exists(), reason="wrk is not installed (apt-get install -y wrk)")
def test_the_server_comparison_runs_both_servers_and_prints_the_ratios() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.servers", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for server in ("analytics serve", "gunicorn"):
        for route in ("beacon", "counters"):
            assert f"{server:<17}{route:<10}" in result.stdout, output
    assert "ratio gunicorn/serve, beacon (req/s): " in result.stdout, output
    assert "ratio gunicorn/serve, counters (req/s): " in result.stdout, output
