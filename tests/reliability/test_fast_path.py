"""The stateless proxy's inline path forwards exactly what its full path does.

The first request of a route takes the full path (``receive``: the targets
are not known yet) through the awaitable that ``receive_nowait`` hands the
Dispatcher; a retransmission of it takes the inline path. Both must leave
byte for byte the same (RFC 3261 section 16.11: the branch is a function of
the request), and a response must come back without our Via either way.
"""

from __future__ import annotations

import anyio
import pytest

from dispatcher._peer import udp_peer
from server._support import raw
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response
from trio_sip.server import StatelessProxy

pytestmark = pytest.mark.anyio


async def test_inline_path_forwards_like_the_full_path() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as client, udp_peer(tg) as uas:
        async with Dispatcher(
            ["udp:127.0.0.1:0"],
            response_cache=False,
            do_retransmits=False,
            domain2proxy={"*": f"sip:127.0.0.1:{uas.port}"},
        ) as disp:
            proxy = StatelessProxy(disp)
            disp.set_receiver(proxy.receive_nowait)
            full_path: list[Request] = []
            forward = proxy._forward

            async def counted(request: Request, *args: object, **kwargs: object) -> bool:
                full_path.append(request)
                return await forward(request, *args, **kwargs)  # type: ignore[arg-type]

            proxy._forward = counted  # type: ignore[method-assign]
            here = disp.legs[0].address
            invite = raw("INVITE", "sip:bob@example.com", client.address, branch="z9hG4bKfp1")
            await client.send(invite, here)
            (first,) = await uas.wait_for(1)
            # The retransmission: targets are known now, so it goes inline.
            await client.send(invite, here)
            second = (await uas.wait_for(2))[1]
            assert bytes(first.message) == bytes(second.message)
            assert len(full_path) == 1, "the retransmission did not go inline"
            forwarded = first.message
            assert isinstance(forwarded, Request)
            assert forwarded.max_forwards == 69
            assert len(forwarded.via) == 2
            assert forwarded.top_via.host == "127.0.0.1"
            assert forwarded.top_via.port == here[1]
            assert forwarded.via[1].branch == "z9hG4bKfp1"
            # The callee answers to the proxy; the answer reaches the caller
            # with our Via taken off.
            ringing = bytes(forwarded).replace(
                forwarded.start_line.encode(), b"SIP/2.0 180 Ringing", 1
            )
            await uas.send(ringing, here)
            (answer,) = await client.wait_for(1)
            assert isinstance(answer.message, Response)
            assert answer.message.status == 180
            assert [v.branch for v in answer.message.via] == ["z9hG4bKfp1"]
            stats = proxy.statistics()
            assert (stats.requests_forwarded, stats.responses_forwarded) == (2, 1)
            assert disp.statistics().receiver_errors == 0
        tg.cancel_scope.cancel()
