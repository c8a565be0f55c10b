"""Testing a SIP application on an in-memory network with loss, in virtual time.

This file is a pytest module (``pytest examples/lossy_network_test.py``) that
uses trio-sip's pytest plugin: the ``fake_network`` fixture is a running
:class:`~trio_sip.testing.FakeNetwork`, and the ``virtual_time`` marker puts
the test on a clock that jumps ahead whenever every task waits, so 30% packet
loss and the retransmissions that overcome it take milliseconds. With
``trio_sip_backends = ["trio", "asyncio"]`` in the pytest configuration, it
runs on both backends.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sip import DeliveryError, Dispatcher
from trio_sip.testing import FakeNetwork

from .echo_endpoint import EchoEndpoint, message

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


async def test_echo_survives_a_lossy_network(fake_network: FakeNetwork) -> None:
    fake_network.loss = 0.3
    async with (
        Dispatcher([fake_network.leg("192.0.2.10:5060")]) as server,
        Dispatcher([fake_network.leg("192.0.2.20:5060")]) as client,
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
