"""trio_sip.testing: the in-memory network with its loss, delay and reordering knobs."""

from __future__ import annotations

import anyio
import pytest
from tests.dispatcher._peer import request

from trio_sip import DeliveryError, Dispatcher, Request, Response, TransportError
from trio_sip.message import make_response
from trio_sip.testing import FakeNetwork

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


def _answer_with(disp: Dispatcher, status: int = 200) -> list[Request]:
    seen: list[Request] = []

    async def receive(packet: Request | Response, leg: object, addr: object) -> None:
        if isinstance(packet, Request) and packet.method != "ACK":
            seen.append(packet)
            await disp.deliver(make_response(packet, status, to_tag="t"))

    disp.set_receiver(receive)
    return seen


async def test_requests_get_through_a_lossy_network_by_retransmission() -> None:
    async with (
        FakeNetwork(loss=0.3, seed=7) as net,
        Dispatcher([net.leg("192.0.2.1:5060")]) as alice,
        Dispatcher([net.leg("192.0.2.2:5060")]) as bob,
    ):
        seen = _answer_with(bob)
        outcomes: list[DeliveryError | None] = []
        all_done = anyio.Event()

        def outcome(error: DeliveryError | None) -> None:
            outcomes.append(error)
            if len(outcomes) == 20:
                all_done.set()

        for _ in range(20):
            await alice.deliver(request("MESSAGE", "sip:bob@192.0.2.2:5060"), callback=outcome)
        with anyio.fail_after(64):
            await all_done.wait()
        stats = net.statistics()
        retransmissions = alice.statistics().retransmissions
    assert outcomes == [None] * 20  # every request was answered in the end
    assert len({r.call_id for r in seen}) == 20
    assert stats.lost > 0
    assert retransmissions > 0


async def test_delay_is_exact_and_jitter_reorders() -> None:
    async with (
        FakeNetwork(delay=0.25, seed=3) as net,
        Dispatcher([net.leg("192.0.2.1:5060")], do_retransmits=False) as alice,
        Dispatcher([net.leg("192.0.2.2:5060")]) as bob,
    ):
        arrivals: list[float] = []
        bob.set_receiver(lambda packet, leg, addr: arrivals.append(anyio.current_time()))
        start = anyio.current_time()
        await alice.deliver(request("MESSAGE", "sip:bob@192.0.2.2:5060"))
        await anyio.sleep(1)
        assert arrivals == [pytest.approx(start + 0.25)]
        net.delay, net.jitter = 0.0, 0.5
        for _ in range(50):
            await alice.deliver(request("MESSAGE", "sip:bob@192.0.2.2:5060"))
        await anyio.sleep(1)
    assert len(arrivals) == 51
    assert net.statistics().reordered > 0


async def test_unroutable_and_duplicate_addresses() -> None:
    async with (
        FakeNetwork() as net,
        Dispatcher([net.leg("192.0.2.1:5060")], do_retransmits=False) as alice,
    ):
        await alice.deliver(request("MESSAGE", "sip:nobody@192.0.2.9:5060"))
        await anyio.sleep(0.1)
        assert net.statistics().unroutable == 1
        with pytest.raises(TransportError, match="in use"):
            async with Dispatcher([net.leg("192.0.2.1:5060")]):
                pass
