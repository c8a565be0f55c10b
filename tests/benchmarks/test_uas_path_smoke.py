"""``benchmarks/bench_uas_path.py`` still runs: a few calls to ``trio-sip answer``, each backend."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_uas_path.py"


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_few_calls_one_at_a_time(backend: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--backend", backend, "--calls", "20", "--warmup", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Every call was answered and hung up (the tool raises otherwise), and measured.
    assert re.search(rf"answer \({backend}\): \d+ us CPU per call, 20 calls", done.stdout), (
        done.stdout
    )
