"""Fixtures for the interop tests: real SIP peers, found before the event loop.

Each fixture returns the program to run and skips the test when it is not
installed, or fails it when peers are required (``CI`` set, or
``TRIO_SIP_REQUIRE_PEERS=1``; see :func:`peers.require_program`). Request the
fixture even when the harness finds the program by itself: discovery has to
happen here, outside the event loop, because pytest's skip exception must not
travel through a task group.
"""

from __future__ import annotations

import pytest

from .peers import ipv6_available, require_perl_module, require_program


@pytest.fixture(scope="session")
def sipp() -> str:
    """The ``sipp`` program (Debian package sip-tester)."""
    return require_program("sipp", "sip-tester")


@pytest.fixture(scope="session")
def netsip() -> str:
    """A ``perl`` that can load Net::SIP (Debian package libnet-sip-perl)."""
    return require_perl_module("Net::SIP", "libnet-sip-perl")


@pytest.fixture(scope="session")
def kamailio() -> str:
    """The ``kamailio`` program (Debian package kamailio)."""
    return require_program("kamailio", "kamailio")


@pytest.fixture(scope="session")
def ipv6_loopback() -> str:
    """``::1``, or skip: some containers have no IPv6 at all.

    Not a missing peer, so a skip even under CI.
    """
    if not ipv6_available():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    return "::1"
