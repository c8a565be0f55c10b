"""An answered call costs the UserAgent one task: the one that receives its RTP.

It used to be three (the call's task, a task watching the dialog, the media
session's receive task) plus the Endpoint's timer tasks; this counts them, so
that it cannot come back unseen. Virtual time on both backends.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.endpoint import ClientRequest, Endpoint
from trio_sip.media import make_offer
from trio_sip.ua import Call, UserAgent

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

CALLS = 10
BOUND = 60.0


async def test_an_answered_call_holds_one_task() -> None:
    answered: list[Call] = []
    async with (
        UserAgent("sip:bob@example.com", listen=["udp:127.0.0.1:0"]) as bob,
        Dispatcher(["udp:127.0.0.1:0"]) as disp,
        Endpoint(disp, user="alice") as alice,
        anyio.create_task_group() as tg,
    ):

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                answered.append(call)

        tg.start_soon(callee)
        await anyio.sleep(0.01)
        before = len(anyio.get_running_tasks())
        target = f"sip:bob@{bob.dispatcher.legs[0].sent_by()}"
        offer = bytes(make_offer("127.0.0.1", 40000))
        requests: list[ClientRequest] = []
        with anyio.fail_after(BOUND):
            for _ in range(CALLS):
                request = await alice.new_request(
                    "INVITE", target, headers=[("Content-Type", "application/sdp")], body=offer
                )
                assert (await request.wait_final()).status == 200
                requests.append(request)
        await anyio.sleep(1)  # past the 100 Trying delay and the first 2xx retransmission
        assert bob.endpoint.statistics().pending_2xx == 0  # every ACK arrived
        assert len(answered) == CALLS
        assert not any(call.ended for call in answered)
        assert len(anyio.get_running_tasks()) - before == CALLS

        with anyio.fail_after(BOUND):
            for request in requests:
                assert (await alice.request(request.dialogs[0], "BYE")).status == 200
            await anyio.sleep(0.1)
        # The BYE ended each call, and its task with it.
        assert all(call.ended for call in answered)
        assert bob._calls == {}
        assert len(anyio.get_running_tasks()) == before
        tg.cancel_scope.cancel()
