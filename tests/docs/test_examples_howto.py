"""The examples of the how-to guides run, each in its own kind of program."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ._blocks import ROOT


@pytest.mark.parametrize(
    ("script", "printed"),
    [("from_trio.py", "hello from Trio\n"), ("from_asyncio.py", "hello from asyncio\n")],
)
def test_native_program_runs(script: str, printed: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == printed
