"""Calls and registrations of a UserAgent held to RFC 3261 and RFC 3264.

What a softphone expects of the front door, beyond tests/ua/test_ua.py:
an answered call is hung up however the caller learnt of the answer
(section 15), a registration is refreshed by the time granted to our own
binding (10.2.4), an answer of our own SDP is what a re-INVITE goes on
from (RFC 3264 section 8), the media of a call stops with its BYE
(15.1), and crossing re-INVITEs are retried after the 491 (14.1).
Loopback legs only; virtual time where a timer matters.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.media import answer_offer
from trio_sip.message import Request, Response, make_response
from trio_sip.message.sdp import Direction, SessionDescription
from trio_sip.transport.leg import Address, Leg
from trio_sip.ua import Call, CallFailed, UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


def address(ua: UserAgent) -> str:
    return address_of(ua.dispatcher)


def address_of(disp: Dispatcher) -> str:
    return disp.legs[0].sent_by()


@pytest.mark.virtual_time
async def test_leaving_the_block_hangs_up_a_call_answered_without_wait_answered() -> None:
    # The caller followed the call with events() alone, which ends with the
    # 2xx, and left the block: the call was answered (and ACKed), so leaving
    # must hang it up (BYE, section 15), as the invite() docstring says, and
    # not leave the callee in a call with no media until the UA closes.
    answered: list[Call] = []
    async with (
        UserAgent("sip:alice@example.com", listen=LEG) as alice,
        UserAgent("sip:bob@example.com", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.ring()
                await call.answer()
                answered.append(call)
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)}") as call:
                statuses = [response.status async for response in call.events()]
            assert 180 in statuses
            assert call.ended
            (theirs,) = answered
            # Bob hears the BYE while alice's UA still runs.
            await theirs.wait_ended()
        assert alice.endpoint.dialogs == ()


@dataclass
class Bindings:
    """A registrar that grants our binding ``ours`` seconds and lists another
    device of the same user on the same host (another port) first, at ``theirs``."""

    disp: Dispatcher
    ours: int
    theirs: int
    #: When each REGISTER arrived, and the Expires it asked for.
    seen: list[tuple[float, str]] = field(default_factory=list)

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        assert isinstance(packet, Request)
        self.seen.append((anyio.current_time(), packet.headers.get("expires") or ""))
        (mine,) = packet.contacts
        other = replace(mine.uri, port=(mine.uri.port or 5060) + 2)
        contacts = [
            ("Contact", f"<{other}>;expires={self.theirs}"),
            ("Contact", f"<{mine.uri}>;expires={self.ours}"),
        ]
        response = make_response(packet, 200, to_tag="reg", headers=contacts)
        await self.disp.deliver(response, leg=leg)
        return True


@pytest.mark.virtual_time
async def test_a_refresh_follows_the_time_granted_to_our_own_contact() -> None:
    # Section 10.2.4: the 200 lists every binding of the AOR; the UA takes
    # the expiry of the contact it registered, compared by the rules of
    # section 19.1.4 (the port included), not that of another device of
    # the same user on the same host.
    async with Dispatcher(LEG) as disp:
        registrar = Bindings(disp, ours=60, theirs=3600)
        disp.set_receiver(registrar)
        async with UserAgent("sip:bob@example.com", listen=LEG) as bob:
            with anyio.fail_after(10):
                await bob.register(f"sip:{address_of(disp)}", expires=600)
            await anyio.sleep(45)
    times = [at for at, _ in registrar.seen]
    # Granted 60 s: refreshed 30 s early, then removed as the UA closed.
    assert len(times) == 3
    assert times[1] - times[0] == pytest.approx(30, abs=0.5)
    assert registrar.seen[2][1] == "0"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["description", "bytes"])
async def test_an_answer_of_our_own_is_the_sdp_the_call_goes_on_from(as_bytes: bool) -> None:
    # answer(sdp) sends the caller's own SDP: it is what we sent (local_sdp,
    # for hold() and the next answer) and the INVITE's offer what we got.
    # The peer's re-INVITE is then answered from its o= line, the version
    # one higher (RFC 3264 section 8), and we can hold the peer ourselves.
    mine: list[SessionDescription] = []
    answered: list[Call] = []
    async with (
        UserAgent("sip:alice@127.0.0.1", listen=LEG) as alice,
        UserAgent("sip:bob@127.0.0.1", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                assert call.invite is not None
                offer = SessionDescription.parse(call.invite.body)
                sdp, _ = answer_offer(offer, bob.local_ip, call.media.local_port)
                mine.append(sdp)
                await call.answer(bytes(sdp) if as_bytes else sdp)
                answered.append(call)
                await call.wait_ended()
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)}") as a:
                await a.wait_answered()
                await anyio.wait_all_tasks_blocked()
                (b,) = answered
                assert b.local_sdp == mine[0]
                assert b.remote_sdp == a.local_sdp
                held = SessionDescription.parse((await a.hold()).body)
                assert held.origin.session_id == mine[0].origin.session_id
                assert held.origin.session_version == mine[0].origin.session_version + 1
                assert held.effective_direction(held.media[0]) is Direction.RECVONLY
                await b.hold()


@pytest.mark.virtual_time
@pytest.mark.parametrize("hangs_up", ["we", "they"])
async def test_the_end_of_a_call_we_made_stops_its_media_at_once(hangs_up: str) -> None:
    # Section 15.1.1: the UAC of a BYE "MUST consider the session terminated
    # (and therefore stop sending or listening for media)" as the BYE goes;
    # 15.1.2: the UAS of one SHOULD do the same. So inside the invite block,
    # once the call is over, our RTP port is closed: receive() ends and the
    # port is free again, not held until the block is left.
    answered: list[Call] = []
    async with (
        UserAgent("sip:alice@127.0.0.1", listen=LEG) as alice,
        UserAgent("sip:bob@127.0.0.1", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                answered.append(call)
                await call.wait_ended()
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)}") as a:
                await a.wait_answered()
                port = a.media.local_port
                if hangs_up == "we":
                    await a.bye()
                else:
                    await anyio.wait_all_tasks_blocked()
                    await answered[0].bye()
                    await a.wait_ended()
                assert [packet async for packet in a.media.receive()] == []
                for rtp_or_rtcp in (port, port + 1):
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                        probe.bind(("127.0.0.1", rtp_or_rtcp))


@asynccontextmanager
async def answered_call() -> AsyncIterator[tuple[Call, Call]]:
    """Alice's call to Bob, answered: (alice's side, bob's side)."""
    answered: list[Call] = []
    async with (
        UserAgent("sip:alice@127.0.0.1", listen=LEG) as alice,
        UserAgent("sip:bob@127.0.0.1", listen=LEG) as bob,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                answered.append(call)
                await call.wait_ended()
                return

        tg.start_soon(callee)
        with anyio.fail_after(10):
            async with alice.invite(f"sip:bob@{address(bob)}") as a:
                await a.wait_answered()
                await anyio.wait_all_tasks_blocked()
                (b,) = answered
                yield a, b


@pytest.mark.virtual_time
async def test_holds_that_cross_are_each_sent_once_more_after_the_491() -> None:
    # Glare: both sides re-INVITE at once and each gets 491 (section 14.2).
    # Section 14.1: the UAC then tries once more after a random time, 2.1 to
    # 4 s for the owner of the Call-ID (the caller), 0 to 2 s for the other,
    # so the two retries do not cross again. Both holds end up done: each
    # side holds the other, and every stream is inactive (RFC 3264 8.4).
    async with answered_call() as (a, b):
        held: dict[str, tuple[int, float]] = {}
        start = anyio.current_time()

        async def hold(name: str, call: Call) -> None:
            response = await call.hold()
            held[name] = (response.status, anyio.current_time() - start)

        async with anyio.create_task_group() as both:
            both.start_soon(hold, "alice", a)
            both.start_soon(hold, "bob", b)
        assert held["alice"][0] == held["bob"][0] == 200
        assert held["bob"][1] <= 2.1
        assert 2.1 <= held["alice"][1] <= 4.1
        assert a.media.direction is b.media.direction is Direction.INACTIVE


@pytest.mark.virtual_time
async def test_a_refused_reoffer_leaves_the_session_as_it_was() -> None:
    # RFC 3264 section 8: a re-offer answered 488 changes nothing; the
    # peer's description in force is still the one we answered before.
    async with answered_call() as (a, b):
        in_force = b.remote_sdp
        assert in_force is not None
        assert a.local_sdp is not None
        # Only G.729, which nobody here speaks.
        media = (replace(a.local_sdp.media[0], formats=("18",), attributes=()),)
        unusable = replace(a.local_sdp, media=media).with_next_version()
        with pytest.raises(CallFailed) as refused:
            await a.request(
                "INVITE",
                headers=[("Content-Type", "application/sdp")],
                body=bytes(unusable),
            )
        assert refused.value.status == 488
        assert b.remote_sdp == in_force
