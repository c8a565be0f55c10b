"""Established calls cost the Endpoint no task: its timers live on one task.

A task (and a cancel scope) per timer made an answering Endpoint hold about
ten tasks per call; this counts them, so that it cannot come back unseen.
Virtual time on both backends.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sip.endpoint import ClientRequest, Endpoint
from trio_sip.message import Request

from ._helpers import BOUND, running_endpoint, serve, uri_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

CALLS = 20


async def _answer_at_once(ep: Endpoint, request: Request) -> None:
    await ep.respond(request, 200)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_established_calls_hold_no_task(proto: str) -> None:
    async with (
        running_endpoint(proto) as uas,
        running_endpoint(proto) as uac,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(serve, uas, _answer_at_once)
        calls: list[ClientRequest] = []

        async def make_call() -> None:
            call = await uac.new_request("INVITE", uri_of(uas))
            assert (await call.wait_final()).status == 200
            calls.append(call)

        with anyio.fail_after(BOUND):
            # A first call opens the connection (TCP: a reader task each side).
            await make_call()
            await anyio.sleep(0.5)
            before = len(anyio.get_running_tasks())
            for _ in range(CALLS - 1):
                await make_call()
        await anyio.sleep(1)  # past the 100 Trying delay and the first 2xx retransmission
        assert uas.statistics().pending_2xx == 0  # every ACK arrived
        assert len(uas.dialogs) == len(uac.dialogs) == CALLS
        # Every answer handler has returned; nothing else may be left per call.
        assert len(anyio.get_running_tasks()) == before
        # Per call, the UAS holds one timer: RFC 6026 Timer L of the INVITE
        # transaction in Accepted (the 100 Trying and the 2xx schedule are gone).
        assert uas.statistics().timers == CALLS

        with anyio.fail_after(BOUND):
            for call in calls:
                assert (await uac.request(call.dialogs[0], "BYE")).status == 200
        assert uas.dialogs == uac.dialogs == ()
        assert len(anyio.get_running_tasks()) == before
        # 64*T1 later every transaction is over and no timer is left.
        await anyio.sleep(40)
        assert uas.statistics().timers == uac.statistics().timers == 0
        assert uas.statistics().server_transactions == 0
        tg.cancel_scope.cancel()
