"""examples/load_test.py against ``trio-sip answer``, at a tiny size."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.test_cli import Command

from ._blocks import ROOT

SCRIPT = ROOT / "examples" / "load_test.py"


def load(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), f"sip:load@127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_every_call_completes(backend: str) -> None:
    with Command("--backend", backend, "answer", "--listen", "udp:127.0.0.1:0") as answer:
        port = answer.start().port()
        run = load(port, "--calls", "6", "--rate", "30", "--hold", "0.1", "--backend", backend)
        code, out, _ = answer.stop()
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("calls: 6 completed, 0 failed, 0 unfinished of 6 started in ")
    assert code == 0
    assert out.count("rtp: call_id=") == 6  # the answerer saw six calls through


def test_rejected_calls_are_counted_by_status() -> None:
    with Command("answer", "--listen", "udp:127.0.0.1:0", "--code", "486") as answer:
        run = load(answer.start().port(), "--calls", "4", "--rate", "50")
    assert run.returncode == 1
    assert run.stdout.startswith("calls: 0 completed, 4 failed, 0 unfinished of 4 started")
    assert "  failed 486: 4\n" in run.stdout


def test_the_time_limit_bounds_the_run() -> None:
    # The answerer rings for a minute: every call is still ringing when time is up.
    with Command("answer", "--listen", "udp:127.0.0.1:0", "--ring", "60") as answer:
        run = load(answer.start().port(), "--calls", "3", "--rate", "50", "--time-limit", "1")
    assert run.returncode == 1
    assert run.stdout.startswith("calls: 0 completed, 0 failed, 3 unfinished of 3 started")
