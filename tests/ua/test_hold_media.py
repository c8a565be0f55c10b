"""Hold and unhold between two UserAgents on real UDP legs: directions and RTP.

A puts B on hold: B sees a=sendonly in the re-INVITE, answers recvonly, and
its media session stops sending (the packets A receives stop growing) while
A's still reach B. A takes B off hold: both are sendrecv and B's RTP resumes,
without a gap in its sequence numbers (nothing was numbered while on hold).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import TaskGroup

from trio_sip.media import silence
from trio_sip.message.sdp import Direction, SessionDescription
from trio_sip.ua import Call, UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


async def wait_total(call: Call, total: int) -> None:
    """Take audio packets from ``call`` until it has received ``total`` in all."""
    if call.media.statistics().packets_received >= total:
        return
    async for _ in call.media.receive():
        if call.media.statistics().packets_received >= total:
            return


def address(ua: UserAgent) -> str:
    return ua.dispatcher.legs[0].sent_by()


async def wait_packets(call: Call, count: int) -> int:
    """Take ``count`` more audio packets from ``call``; return its total received."""
    taken = 0
    async for _ in call.media.receive():
        taken += 1
        if taken == count:
            break
    return call.media.statistics().packets_received


@asynccontextmanager
async def answered_call(*, b_sends: bool = False) -> AsyncIterator[tuple[Call, Call, TaskGroup]]:
    """Alice calls Bob on loopback; yields (A's call, B's call, a task group)
    once B has answered. With ``b_sends``, B sends silence from the start."""
    async with (
        UserAgent("sip:alice@127.0.0.1", listen=LEG) as alice,
        UserAgent("sip:bob@127.0.0.1", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):
        answered: list[Call] = []
        got_call = anyio.Event()

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                answered.append(call)
                got_call.set()
                async with anyio.create_task_group() as media:
                    if b_sends:
                        media.start_soon(silence, call.media)
                    await call.wait_ended()
                    media.cancel_scope.cancel()
                return

        tg.start_soon(callee)
        async with alice.invite(f"sip:bob@{address(bob)}") as a:
            await a.wait_answered()
            await got_call.wait()
            yield a, answered[0], tg
        tg.cancel_scope.cancel()


async def test_hold_and_unhold_change_direction_and_stop_and_resume_rtp() -> None:
    with anyio.fail_after(15):
        async with answered_call(b_sends=True) as (a, b, tg):
            tg.start_soon(silence, a.media)
            # Both ways before the hold.
            await wait_packets(a, 10)
            await wait_packets(b, 10)
            assert a.media.direction is b.media.direction is Direction.SENDRECV

            await a.hold()
            assert b.remote_sdp is not None
            assert b.remote_sdp.effective_direction(b.remote_sdp.media[0]) is Direction.SENDONLY
            assert a.remote_sdp is not None
            assert a.remote_sdp.effective_direction(a.remote_sdp.media[0]) is Direction.RECVONLY
            assert b.media.direction is Direction.RECVONLY
            assert a.media.direction is Direction.SENDONLY
            # B stopped before it answered; what it sent until then
            # (and nothing more) reaches A.
            b_sent_held = b.media.statistics().packets_sent
            await wait_total(a, b_sent_held)
            a_held = a.media.statistics().packets_received
            assert a_held == b_sent_held
            # A keeps sending (music on hold) and B keeps receiving.
            await wait_packets(b, 15)
            assert a.media.statistics().packets_received == a_held
            assert b.media.statistics().packets_sent == b_sent_held

            await a.unhold()
            assert b.remote_sdp.effective_direction(b.remote_sdp.media[0]) is Direction.SENDRECV
            assert a.media.direction is b.media.direction is Direction.SENDRECV
            resumed = await wait_packets(a, 10)
            assert resumed >= a_held + 10
            stats = a.media.statistics()
            # B numbered no packet while on hold: A counts no loss.
            assert stats.packets_lost == 0
            assert stats.packets_expected == stats.packets_received


async def test_reinvite_without_offer_gets_ours_in_the_200() -> None:
    # RFC 3261 section 14.2: the 200 to an offer-less re-INVITE carries an offer
    # (same o= session, next version); while we hold the peer it says sendonly.
    with anyio.fail_after(15):
        async with answered_call() as (a, b, _tg):
            first = b.local_sdp
            assert first is not None
            offers = []
            for _ in range(2):
                response = await a.request("INVITE")
                offers.append(SessionDescription.parse(response.body))
                # Then B holds A, and offers the same way again.
                await b.hold()
            for offer, direction in zip(
                offers, (Direction.SENDRECV, Direction.SENDONLY), strict=True
            ):
                assert offer.origin.session_id == first.origin.session_id
                assert offer.origin.session_version > first.origin.session_version
                assert offer.media[0].port == b.media.local_port
                assert offer.effective_direction(offer.media[0]) is direction
                # Every codec we have is offered again, not only the one answered.
                assert {"PCMU", "PCMA"} <= {
                    r.encoding_name for r in offer.media[0].rtpmaps().values()
                }


async def test_the_held_peer_cannot_take_itself_off_hold() -> None:
    # A holds B; B's own re-INVITE offering sendrecv is answered sendonly
    # (A still holds), so B's RTP stays off; A's unhold() ends the hold.
    with anyio.fail_after(15):
        async with answered_call() as (a, b, _tg):
            await a.hold()
            await b.unhold()  # B offers sendrecv
            assert a.local_sdp is not None
            assert a.local_sdp.effective_direction(a.local_sdp.media[0]) is Direction.SENDONLY
            assert b.media.direction is Direction.RECVONLY
            assert a.media.direction is Direction.SENDONLY
            await a.unhold()
            assert a.media.direction is b.media.direction is Direction.SENDRECV
