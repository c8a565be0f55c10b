"""SIPp against the Dispatcher: a small answering endpoint takes SIPp's uac calls.

The endpoint does no dialog or transaction bookkeeping of its own: the
Dispatcher's retransmission of the 2xx (until the ACK), its response cache
(for retransmitted INVITEs and BYEs) and its ACK matching are what make every
call complete, also when SIPp drops one packet in ten.
"""

from __future__ import annotations

import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response, make_response, new_tag
from trio_sip.transport import Leg

from .peers import SCENARIOS, Address, Transport, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


class AnsweringEndpoint:
    """Answers INVITE with 180 and 200, BYE and anything else with 200."""

    def __init__(self, disp: Dispatcher) -> None:
        self.disp = disp
        self.calls = 0
        self.byes = 0

    async def receive(self, packet: Request | Response, leg: Leg, addr: object) -> None:
        if not isinstance(packet, Request) or packet.method == "ACK":
            return
        if packet.method == "INVITE":
            self.calls += 1
            tag = new_tag()
            await self.disp.deliver(make_response(packet, 180, to_tag=tag))
            contact = ("Contact", f"<{leg.contact_uri('echo')}>")
            ok = make_response(
                packet,
                200,
                to_tag=tag,
                headers=[contact, ("Content-Type", "application/sdp")],
                body=SDP,
            )
            await self.disp.deliver(ok)
            return
        if packet.method == "BYE":
            self.byes += 1
        await self.disp.deliver(make_response(packet, 200))


@pytest.mark.parametrize(
    ("transport", "lost"),
    [(Transport.UDP, None), (Transport.TCP, None), (Transport.UDP, 10.0)],
    ids=["udp", "tcp", "udp-lost-10%"],
)
async def test_sipp_uac_calls_complete(sipp: str, transport: Transport, lost: float | None) -> None:
    calls = 30 if lost is None else 40
    proto = "tcp" if transport is Transport.TCP else "udp"
    async with Dispatcher([f"{proto}:127.0.0.1:0"]) as disp:
        endpoint = AnsweringEndpoint(disp)
        disp.set_receiver(endpoint)
        leg = disp.legs[0]
        # SIPp's uac flow, but matching responses by transaction: with its
        # default matching, a retransmitted 200 for the INVITE could pass for
        # the answer to a BYE that never arrived.
        result = await run_sipp(
            SCENARIOS / "uac_txn.xml",
            Address("127.0.0.1", leg.port),
            transport=transport,
            calls=calls,
            rate=20,
            lost=lost,
            global_timeout=60 if lost else 20,
            program=sipp,
        )
        stats = disp.statistics()
    assert result.ok, result.describe()
    assert result.successful == calls
    assert result.failed == 0
    assert endpoint.calls == calls
    assert endpoint.byes == calls
    if lost:
        # Loss was survived through retransmission and redelivery, not luck.
        assert stats.retransmissions + stats.redeliveries + stats.absorbed > 0
    else:
        assert stats.retransmissions == 0
        assert stats.deliveries_pending == 0
