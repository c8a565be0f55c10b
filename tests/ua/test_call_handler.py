"""UserAgent.set_call_handler with Call.answer_nowait and Call.reject_nowait.

The handler gets each incoming call as its INVITE arrives, instead of
incoming_calls(). The caller is a bare Endpoint, so that every response
that reaches it can be noted (a 100 Trying included). Each test runs twice,
as in test_tasks_per_call: with the multiplexer receiving every call's RTP,
and with a task per call (what a system without epoll gets). Virtual time
on both backends.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import ClientRequest, Endpoint
from trio_sip.errors import SIPError
from trio_sip.media import make_offer
from trio_sip.message import Request, Response
from trio_sip.message.sdp import SessionDescription
from trio_sip.transport import Leg
from trio_sip.ua import Call, CallFailed, UserAgent

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

BOUND = 60.0


@dataclass
class Alice:
    """The caller: an Endpoint, and the status of every response that reached it."""

    endpoint: Endpoint
    target: str
    arrived: list[int]

    async def call(
        self, offer: bytes | None = None, *, settle: float = 0.1
    ) -> tuple[ClientRequest, Response]:
        """INVITE bob, wait for the final response, and ``settle`` seconds more."""
        with anyio.fail_after(BOUND):
            request = await self.invite(offer)
            final = await request.wait_final()
            await anyio.sleep(settle)
        return request, final

    async def invite(self, offer: bytes | None = None) -> ClientRequest:
        if offer is None:
            offer = bytes(make_offer("127.0.0.1", 40000))
        return await self.endpoint.new_request(
            "INVITE", self.target, headers=[("Content-Type", "application/sdp")], body=offer
        )


@asynccontextmanager
async def calling_bob() -> AsyncIterator[tuple[UserAgent, Alice]]:
    """Bob's UserAgent on loopback and alice's Endpoint that calls him."""
    async with (
        UserAgent("sip:bob@example.com", listen=["udp:127.0.0.1:0"]) as bob,
        Dispatcher(["udp:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="alice") as alice,
    ):
        arrived: list[int] = []

        def receiver(
            packet: Request | Response, leg: Leg, source: tuple[str, int]
        ) -> Awaitable[None]:
            # Below alice's transactions: a 100 Trying they would swallow shows here.
            if isinstance(packet, Response):
                arrived.append(packet.status)
            return alice.receive(packet, leg, source)

        disp.set_receiver(receiver)
        yield bob, Alice(alice, f"sip:bob@{bob.dispatcher.legs[0].sent_by()}", arrived)


def nobody_queued(bob: UserAgent) -> bool:
    return bob.incoming_calls().statistics().current_buffer_used == 0


async def test_answer_nowait_in_the_handler_and_the_caller_hangs_up(rtp_receiving: str) -> None:
    taken: list[Call] = []
    endings: list[str] = []

    def handler(call: Call) -> None:
        call.on_ended(lambda: endings.append("ended"))
        response = call.answer_nowait()
        assert response.status == 200
        taken.append(call)

    async with calling_bob() as (bob, alice):
        bob.set_call_handler(handler)
        with anyio.fail_after(BOUND):
            request = await alice.invite()
            final = await request.wait_final()
            await anyio.sleep(1)  # past the 100 Trying delay; the ACK arrives
        assert final.status == 200
        assert alice.arrived == [200]  # answered at once: no 100 Trying
        (call,) = taken
        answer = SessionDescription.parse(final.body)
        assert final.headers.get("content-type") == "application/sdp"
        assert answer.media[0].port == call.media.local_port
        assert call.local_sdp == answer
        assert call.remote_sdp is not None
        assert call.dialog is not None
        assert bob.endpoint.statistics().pending_2xx == 0
        assert (call.ended, call.media.closed) == (False, False)
        assert nobody_queued(bob)

        with anyio.fail_after(BOUND):
            bye = await alice.endpoint.request(request.dialogs[0], "BYE")
            await anyio.sleep(0.1)
        assert bye.status == 200
        assert call.ended
        assert call.media.closed
        assert endings == ["ended"]
        assert bob._calls == {}


async def test_reject_nowait_sends_the_status_and_ends_the_call(rtp_receiving: str) -> None:
    taken: list[Call] = []
    endings: list[str] = []

    def handler(call: Call) -> None:
        call.on_ended(lambda: endings.append("ended"))
        assert call.reject_nowait(603).status == 603
        assert call.ended
        taken.append(call)

    async with calling_bob() as (bob, alice):
        bob.set_call_handler(handler)
        request, final = await alice.call(settle=1)
        assert final.status == 603
        assert alice.arrived == [603]
        (call,) = taken
        assert call.media.closed
        assert endings == ["ended"]
        assert request.dialogs == []
        assert bob.endpoint.dialogs == ()
        assert nobody_queued(bob)


async def test_a_call_with_no_common_codec_gets_488_from_answer_nowait(rtp_receiving: str) -> None:
    failures: list[CallFailed] = []
    taken: list[Call] = []

    def handler(call: Call) -> None:
        taken.append(call)
        try:
            call.answer_nowait()
        except CallFailed as exc:
            failures.append(exc)

    async with calling_bob() as (bob, alice):
        bob.set_call_handler(handler)
        g729_only = bytes(make_offer("127.0.0.1", 40000, codecs=[18], telephone_event=None))
        _, final = await alice.call(g729_only)
        assert final.status == 488
        assert [failure.status for failure in failures] == [488]
        (call,) = taken
        assert call.ended
        assert call.media.closed


@pytest.mark.parametrize("error", [RuntimeError, SIPError])
async def test_a_handler_that_raises_ends_the_call_and_the_caller_gets_500(
    rtp_receiving: str, error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    # Any exception, a trio-sip error included, and in both modes (with a
    # task per call the handler runs in that task, which must not fail the
    # UserAgent's task group).
    caplog.set_level(logging.ERROR)
    taken: list[Call] = []

    def handler(call: Call) -> None:
        taken.append(call)
        raise error("the handler broke")

    async with calling_bob() as (bob, alice):
        bob.set_call_handler(handler)
        _, final = await alice.call()
        assert final.status == 500
        assert alice.arrived == [500]
        (call,) = taken
        assert call.ended
        assert call.media.closed
        assert "the handler broke" in caplog.text
        # The UserAgent goes on taking calls.
        bob.set_call_handler(lambda call: call.answer_nowait())
        with anyio.fail_after(BOUND):
            assert (await (await alice.invite()).wait_final()).status == 200


async def test_a_handler_may_keep_the_call_and_answer_it_later(rtp_receiving: str) -> None:
    # It must not block: the work that waits goes into a task of its own,
    # and the Endpoint sends 100 Trying meanwhile.
    answered: list[Response] = []
    async with calling_bob() as (bob, alice), anyio.create_task_group() as tg:

        async def answer_later(call: Call) -> None:
            await anyio.sleep(1)
            answered.append(await call.answer())

        bob.set_call_handler(lambda call: tg.start_soon(answer_later, call))
        with anyio.fail_after(BOUND):
            request = await alice.invite()
            start = anyio.current_time()
            final = await request.wait_final()
            answered_after = anyio.current_time() - start
        assert final.status == 200
        assert answered_after == pytest.approx(1.0, abs=0.01)
        assert [r.status for r in request.provisional_responses] == [100]
        assert alice.arrived == [100, 200]
        assert [r.status for r in answered] == [200]
        with anyio.fail_after(BOUND):
            await alice.endpoint.request(request.dialogs[0], "BYE")
            await anyio.sleep(0.1)
        assert bob._calls == {}


async def test_none_gives_the_calls_back_to_incoming_calls(rtp_receiving: str) -> None:
    by_handler: list[Call] = []
    async with calling_bob() as (bob, alice):

        def handler(call: Call) -> None:
            by_handler.append(call)
            call.reject_nowait(486)

        bob.set_call_handler(handler)
        with anyio.fail_after(BOUND):
            first = await (await alice.invite()).wait_final()
        bob.set_call_handler(None)
        with anyio.fail_after(BOUND):
            second = await alice.invite()
            queued = await bob.incoming_calls().receive()
            await queued.answer()
            assert (await second.wait_final()).status == 200
        assert first.status == 486
        assert len(by_handler) == 1
        assert queued is not by_handler[0]
        assert queued.invite is not None
        assert queued.invite.call_id == second.request.call_id
        await alice.endpoint.request(second.dialogs[0], "BYE")


class _Token:
    pass


async def test_an_ended_call_is_freed_without_the_garbage_collector(rtp_receiving: str) -> None:
    # What trio-sip answer does: callbacks that hold the call they report on
    # (the call holds its session, the session the digit callback). Once the
    # call is over, reference counting alone must free it: a cycle left per
    # call would be garbage the collector walks again and again under load.
    # (A Call is slotted without weak references: the token, which only the
    # callbacks hold, goes when they go.)
    refs: list[weakref.ref[_Token]] = []

    def handler(call: Call) -> None:
        token = _Token()
        call.media.on_dtmf(lambda digit: print(digit, call, token))
        call.on_ended(lambda: print(call, token))
        call.answer_nowait()
        refs.append(weakref.ref(token))

    async with calling_bob() as (bob, alice):
        bob.set_call_handler(handler)
        request, final = await alice.call(settle=1)
        assert final.status == 200
        gc.disable()
        try:
            with anyio.fail_after(BOUND):
                bye = await alice.endpoint.request(request.dialogs[0], "BYE")
                await anyio.sleep(0.1)
            assert bye.status == 200
            (ref,) = refs
            assert ref() is None
        finally:
            gc.enable()
