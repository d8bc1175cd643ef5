"""The load test (bench/load.py) runs end to end: ``python -m bench.load --quick``, with wrk."""

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
