"""The ``sipp`` fixture of the interop tests, for the benchmark smoke test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The interop harness is the package ``interop`` under tests/ (as run.py imports it).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interop.peers import require_program


@pytest.fixture(scope="session")
def sipp() -> str:
    """The ``sipp`` program (Debian package sip-tester), or skip (fail under CI)."""
    return require_program("sipp", "sip-tester")
