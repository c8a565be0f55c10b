"""``benchmarks/run.py --smoke`` still runs: every system answers at the tiny rate.

The benchmarks are not part of the suite; this runs them at a tiny size so
that the command cannot rot. A peer that is not installed shows as ``n/a``
in the table; one that is installed must pass the smoke step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
SMOKE_RATE = "25"


def _row(table: str, label: str) -> list[str]:
    for line in table.splitlines():
        if line.startswith(label + "  "):
            return line[len(label) :].split()
    raise AssertionError(f"no row {label!r} in:\n{table}")


def test_smoke_run_measures_every_system(sipp: str) -> None:
    have_netsip = (
        shutil.which("perl") is not None
        and subprocess.run(["perl", "-MNet::SIP", "-e", "1"], capture_output=True).returncode == 0
    )
    have_kamailio = shutil.which("kamailio") is not None
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--systems", "trio,asyncio,netsip,kamailio"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert _row(table, "trio-sip proxy (trio)")[0] == SMOKE_RATE, table
    assert _row(table, "trio-sip proxy (asyncio)")[0] == SMOKE_RATE, table
    for label, present in (
        ("Net::SIP stateless proxy", have_netsip),
        ("Kamailio, 1 worker", have_kamailio),
    ):
        assert _row(table, label)[0] == (SMOKE_RATE if present else "n/a"), table
    # The parser row has a rate, and a ratio when Net::SIP is there.
    parser = _row(table, "trio-sip")
    assert float(parser[0].replace(",", "")) > 0, table
    if have_netsip:
        assert parser[1].endswith("x"), table
