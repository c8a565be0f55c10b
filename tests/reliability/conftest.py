"""The ``sipp`` fixture of the interop tests, for the loss test."""

from __future__ import annotations

import pytest

from interop.peers import require_program


@pytest.fixture(scope="session")
def sipp() -> str:
    """The ``sipp`` program (Debian package sip-tester), or skip (fail under CI)."""
    return require_program("sipp", "sip-tester")
