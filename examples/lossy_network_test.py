"""Testing a SIP application on an in-memory network with loss, in virtual time.

This file is a pytest module: ``pytest examples/lossy_network_test.py``. The
anyio pytest plugin runs it; the ``anyio_backend`` fixture below gives it
Trio's mock clock, which jumps ahead whenever every task waits, so 30%
packet loss and the retransmissions that overcome it take milliseconds.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from trio_sip import DeliveryError, Dispatcher
from trio_sip.testing import FakeNetwork

from .echo_endpoint import EchoEndpoint, message


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


@pytest.mark.anyio
async def test_echo_survives_a_lossy_network() -> None:
    async with (
        FakeNetwork(loss=0.3, seed=42) as net,
        Dispatcher([net.leg("192.0.2.10:5060")]) as server,
        Dispatcher([net.leg("192.0.2.20:5060")]) as client,
    ):
        server.set_receiver(EchoEndpoint(server))
        client.set_receiver(lambda packet, leg, addr: None)
        outcome: list[DeliveryError | None] = []
        done = anyio.Event()

        def delivered(error: DeliveryError | None) -> None:
            outcome.append(error)
            done.set()

        await client.deliver(message("sip:echo@192.0.2.10:5060", "hi"), callback=delivered)
        with anyio.fail_after(40):  # virtual seconds: Timer F is 32
            await done.wait()
    assert outcome == [None]
