"""The per-path benchmarks still run, on each backend: ``bench_uas_path.py``
(a few calls to ``trio-sip answer``) and ``bench_proxy_path.py`` (packets fed
to the stateless proxy, across expiries of its targets cache)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
BACKENDS = pytest.mark.parametrize("backend", ["trio", "asyncio"])


def _run(script: str, *args: str) -> str:
    """Run ``benchmarks/<script> ARGS``; its standard output."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@BACKENDS
def test_a_few_calls_one_at_a_time(backend: str) -> None:
    out = _run("bench_uas_path.py", "--backend", backend, "--calls", "20", "--warmup", "5")
    # Every call was answered and hung up (the tool raises otherwise), and measured.
    assert re.search(rf"answer \({backend}\): \d+ us CPU per call, 20 calls", out), out


@BACKENDS
def test_packets_through_the_proxy(backend: str) -> None:
    # Long enough (seconds) for the targets cache to expire on the way: the
    # tool then feeds that batch again, and checks every packet was forwarded.
    out = _run("bench_proxy_path.py", "--backend", backend, "--count", "10000")
    assert re.fullmatch(r"request +[\d.]+ us per packet\nresponse +[\d.]+ us per packet\n", out), (
        out
    )
