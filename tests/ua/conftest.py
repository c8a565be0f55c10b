"""Fixtures shared by the UserAgent tests."""

from __future__ import annotations

import pytest

from trio_sip.transport import multiplex


@pytest.fixture(params=["multiplexer", "task per call"])
def rtp_receiving(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Who receives an incoming call's RTP: the one multiplexer, or a task per call
    (what a system without epoll does, made here by switching the multiplexer off)."""
    if request.param == "multiplexer":
        if not multiplex.SUPPORTED:
            pytest.skip("no epoll on this system: every call has its task")
    else:
        monkeypatch.setattr(multiplex, "SUPPORTED", False)
    return str(request.param)
