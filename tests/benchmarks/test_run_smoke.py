"""``benchmarks/run.py --smoke`` still runs: every system answers at the tiny rate.

The benchmarks are not part of the suite; this runs them at a tiny size so
that the command cannot rot. A peer that is not installed shows as ``n/a``
in the table; one that is installed must pass the smoke step: every call
succeeds, none fails. Time hardly counts there (``--smoke`` allows a step
four times its nominal time), so a busy machine does not fail it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"
SMOKE_RATE = "25"
SMOKE_MEMORY_CALLS = 50


@dataclass(frozen=True)
class Smoke:
    """What one smoke run printed: the table, and the steps it took (the log)."""

    table: str
    log: str

    def __str__(self) -> str:
        # What an assertion shows: why a row is not clean is in the steps.
        return f"{self.table}\n--- steps (stderr) ---\n{self.log[-3000:]}"


def _row(smoke: Smoke, label: str) -> list[str]:
    for line in smoke.table.splitlines():
        if line.startswith(label + "  "):
            return line[len(label) :].split()
    raise AssertionError(f"no row {label!r} in:\n{smoke}")


def _have_netsip() -> bool:
    return (
        shutil.which("perl") is not None
        and subprocess.run(["perl", "-MNet::SIP", "-e", "1"], capture_output=True).returncode == 0
    )


def _smoke(rows: str, systems: str, timeout: float = 180) -> Smoke:
    """``run.py --smoke`` for some rows and systems: its table and its log."""
    done = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--only", rows, "--systems", systems],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Smoke(done.stdout, done.stderr)


def _assert_distributed(row: list[str], table: Smoke) -> None:
    """A ``--workers`` row ends with its distributor's counts: all forwarded."""
    counts = dict(part.strip("()").split("=") for part in row if "=" in part)
    assert counts["workers"] == "2", table
    assert int(counts["received"]) == int(counts["forwarded"]) > 0, table
    assert counts["dropped"] == "0", table


def test_smoke_run_measures_every_system(sipp: str) -> None:
    have_netsip = _have_netsip()
    have_kamailio = shutil.which("kamailio") is not None
    table = _smoke("proxy,parser", "trio,asyncio,netsip,kamailio,trio-2w")
    assert _row(table, "trio-sip proxy (trio)")[0] == SMOKE_RATE, table
    assert _row(table, "trio-sip proxy (asyncio)")[0] == SMOKE_RATE, table
    workers = _row(table, "proxy --workers 2 (trio)")
    assert workers[0] == SMOKE_RATE, table
    _assert_distributed(workers, table)
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


def test_smoke_uas_row(sipp: str) -> None:
    table = _smoke("uas", "trio,asyncio,netsip,trio-2w,asyncio-2w", timeout=90)
    for label in (
        "trio-sip answer (trio)",
        "trio-sip answer (asyncio)",
        "answer --workers 2 (trio)",
        "answer --workers 2 (asyncio)",
    ):
        assert _row(table, label)[0] == SMOKE_RATE, table
    for label in ("answer --workers 2 (trio)", "answer --workers 2 (asyncio)"):
        _assert_distributed(_row(table, label), table)
    netsip = _row(table, "Net::SIP Simple->listen")
    assert netsip[0] == (SMOKE_RATE if _have_netsip() else "n/a"), table
    if _have_netsip():
        assert _row(table, "trio-sip answer (trio)")[1] == "1.00x", table


def test_smoke_uas_cpu_row(sipp: str) -> None:
    table = _smoke("uas-cpu", "trio,asyncio,netsip", timeout=60)
    for label in ("trio-sip answer (trio)", "trio-sip answer (asyncio)"):
        # Every smoke call succeeded, so there is a cost per call.
        assert float(_row(table, label)[0].replace(",", "")) > 0, table
    netsip = _row(table, "Net::SIP Simple->listen")
    if _have_netsip():
        assert netsip[1] == "1.00x", table
        assert _row(table, "trio-sip answer (trio)")[1].endswith("x"), table
    else:
        assert netsip[0] == "n/a", table


def test_smoke_registrar_row(sipp: str) -> None:
    table = _smoke("registrar", "trio,asyncio,kamailio", timeout=60)
    assert _row(table, "trio-sip registrar (trio)")[0] == SMOKE_RATE, table
    assert _row(table, "trio-sip registrar (asyncio)")[0] == SMOKE_RATE, table
    present = shutil.which("kamailio") is not None
    kamailio = _row(table, "Kamailio registrar, 1 worker")
    assert kamailio[0] == (SMOKE_RATE if present else "n/a"), table


def test_smoke_memory_row(sipp: str) -> None:
    table = _smoke("memory", "trio,asyncio", timeout=60)
    for backend in ("trio", "asyncio"):
        calls, rss_mb, kb_per_call, *_ = _row(table, f"trio-sip answer ({backend})")
        # Every smoke call is held, and the answering process grew while holding them.
        assert calls == str(SMOKE_MEMORY_CALLS), table
        assert float(rss_mb) > 0, table
        assert float(kb_per_call) > 0, table
