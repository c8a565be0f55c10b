"""reply() as RFC 3261 section 8.2.6 and 8.2.7 ask of a stateless element."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response
from trio_sip.server import Blocker, ReceiveChain, reply
from trio_sip.transport.leg import Address, Leg

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def stateless(
    *, cache: bool = False
) -> AsyncIterator[tuple[UDPPeer, Dispatcher, tuple[str, int]]]:
    """A Dispatcher as a stateless element runs it: no retransmissions, no cache by default."""
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"], response_cache=cache, do_retransmits=False) as d:
            yield peer, d, d.legs[0].address
        tg.cancel_scope.cancel()


def invite(peer: UDPPeer, branch: str) -> bytes:
    return raw("INVITE", "sip:bob@example.com", peer.address, branch=branch)


async def test_a_retransmitted_request_gets_the_same_to_tag() -> None:
    # Section 8.2.7: a stateless UAS generates To tags "in a manner that will
    # generate the same tag for the same request consistently": a second 486
    # with another tag looks to the caller like a fork of its INVITE.
    async with stateless() as (peer, disp, dst):
        disp.set_receiver(ReceiveChain([Blocker(disp, {"INVITE": 486})]))
        data = invite(peer, "z9hG4bKretr")
        first = final(await exchange(peer, dst, data))
        again = final(await exchange(peer, dst, data))
        other = final(await exchange(peer, dst, invite(peer, "z9hG4bKother")))
    assert first.status == again.status == 486
    assert first.to.tag
    assert again.to.tag == first.to.tag
    # Another request, another tag (19.3: tags are unique).
    assert other.to.tag
    assert other.to.tag != first.to.tag


class RingThenBusy:
    """A UAS core on the Dispatcher: 180, then 486, both through reply()."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        if isinstance(packet, Request) and packet.method == "INVITE":
            await reply(self.dispatcher, packet, 180, leg)
            await reply(self.dispatcher, packet, 486, leg)
            return True
        return False


async def test_a_provisional_response_carries_the_final_responses_to_tag() -> None:
    # Section 8.2.6.2: a UAS adds a To tag to every response but 100 Trying,
    # the same tag to all responses to one request; a 180 without one makes
    # no early dialog.
    async with stateless(cache=True) as (peer, disp, dst):
        disp.set_receiver(RingThenBusy(disp))
        await peer.send(invite(peer, "z9hG4bKring"), dst)
        ringing, busy = (final(a.message) for a in (await peer.wait_for(2))[:2])
    assert (ringing.status, busy.status) == (180, 486)
    assert ringing.to.tag
    assert ringing.to.tag == busy.to.tag


class RejectAll:
    """A handler that refuses every request it is given, through reply()."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        if isinstance(packet, Request):
            await reply(self.dispatcher, packet, 403, leg)
        return True


async def test_reply_never_answers_an_ack() -> None:
    # Section 8.2.7: a stateless UAS MUST ignore ACK requests; an ACK is
    # never answered (section 17). An ACK that reaches reply() (an ACK for a
    # 2xx, or one for another element's response) must not get a 403.
    async with stateless() as (peer, disp, dst):
        disp.set_receiver(ReceiveChain([RejectAll(disp)]))
        ack = raw("ACK", "sip:bob@example.com", peer.address, branch="z9hG4bKack")
        await peer.send(ack, dst)
        options = raw("OPTIONS", "sip:bob@example.com", peer.address, branch="z9hG4bKo", cseq=2)
        answer = final(await exchange(peer, dst, options))
    # Packets of one source reach the chain, and their answers the peer, in order.
    assert answer.cseq.method == "OPTIONS"
    assert [a.message.cseq.method for a in peer.arrivals] == ["OPTIONS"]
