"""An answered call costs the UserAgent no task: one multiplexer task receives all RTP.

It used to be three (the call's task, a task watching the dialog, the media
session's receive task) plus the Endpoint's timer tasks, then one (the task
receiving its RTP); without epoll it still is that one. This counts them, so
that they cannot come back unseen. Virtual time on both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import ClientRequest, Endpoint
from trio_sip.media import make_offer
from trio_sip.ua import Call, UserAgent

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

CALLS = 10
BOUND = 60.0


@pytest.fixture
def tasks_per_call(rtp_receiving: str) -> int:
    """Tasks an answered call holds: none with the multiplexer, one without (no epoll)."""
    return 0 if rtp_receiving == "multiplexer" else 1


@asynccontextmanager
async def calling_bob(
    callee: Callable[[UserAgent], Awaitable[None]],
) -> AsyncIterator[tuple[UserAgent, Endpoint, Callable[[], Awaitable[ClientRequest]]]]:
    """Bob's UserAgent with ``callee`` taking his calls; alice's Endpoint and a way to call him."""
    async with (
        UserAgent("sip:bob@example.com", listen=["udp:127.0.0.1:0"]) as bob,
        Dispatcher(["udp:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="alice") as alice,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(callee, bob)
        await anyio.sleep(0.01)
        target = f"sip:bob@{bob.dispatcher.legs[0].sent_by()}"
        offer = bytes(make_offer("127.0.0.1", 40000))

        async def invite() -> ClientRequest:
            return await alice.new_request(
                "INVITE", target, headers=[("Content-Type", "application/sdp")], body=offer
            )

        yield bob, alice, invite
        tg.cancel_scope.cancel()


async def test_the_tasks_an_answered_call_holds(tasks_per_call: int) -> None:
    answered: list[Call] = []

    async def callee(bob: UserAgent) -> None:
        async for call in bob.incoming_calls():
            await call.answer()
            answered.append(call)

    async with calling_bob(callee) as (bob, alice, invite):
        before = len(anyio.get_running_tasks())
        requests: list[ClientRequest] = []
        with anyio.fail_after(BOUND):
            for _ in range(CALLS):
                request = await invite()
                assert (await request.wait_final()).status == 200
                requests.append(request)
        await anyio.sleep(1)  # past the 100 Trying delay and the first 2xx retransmission
        assert bob.endpoint.statistics().pending_2xx == 0  # every ACK arrived
        assert len(answered) == CALLS
        assert not any(call.ended for call in answered)
        assert len(anyio.get_running_tasks()) - before == CALLS * tasks_per_call
        assert not any(call.media.closed for call in answered)

        with anyio.fail_after(BOUND):
            for request in requests:
                assert (await alice.request(request.dialogs[0], "BYE")).status == 200
            await anyio.sleep(0.1)
        # The BYE ended each call, its task and its RTP sockets with it.
        assert all(call.ended for call in answered)
        assert all(call.media.closed for call in answered)
        assert bob._calls == {}
        assert len(anyio.get_running_tasks()) == before


async def test_a_call_cancelled_before_the_answer_ends_and_lets_go(tasks_per_call: int) -> None:
    # Nobody answers; the caller's CANCEL ends the INVITE with 487, and with
    # it the call: on_ended callbacks run once, the RTP sockets close, and
    # no task is left for it.
    taken: list[Call] = []
    arrived = anyio.Event()
    endings: list[str] = []

    async def callee(bob: UserAgent) -> None:
        async for call in bob.incoming_calls():
            call.on_ended(lambda: endings.append("ended"))
            taken.append(call)
            arrived.set()

    async with calling_bob(callee) as (bob, _, invite):
        before = len(anyio.get_running_tasks())
        with anyio.fail_after(BOUND):
            request = await invite()
            await arrived.wait()
            (call,) = taken
            assert not call.ended
            assert not call.media.closed
            assert len(anyio.get_running_tasks()) - before == tasks_per_call
            await request.cancel()
            assert (await request.wait_final()).status == 487
            await anyio.sleep(0.1)
        assert call.ended
        assert call.media.closed
        assert endings == ["ended"]
        call.on_ended(lambda: endings.append("late"))  # over already: at once
        assert endings == ["ended", "late"]
        assert len(anyio.get_running_tasks()) == before
        assert bob._incoming == {}
