"""The stateless proxy against RFC 3261 sections 16.3, 16.6 and 16.11: the
rules test_proxy.py does not cover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response
from trio_sip.server import StatelessProxy

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(
    **options: Any,
) -> AsyncIterator[tuple[UDPPeer, UDPPeer, StatelessProxy, Dispatcher]]:
    async with anyio.create_task_group() as tg, udp_peer(tg) as caller, udp_peer(tg) as callee:
        async with Dispatcher(
            ["udp:127.0.0.1:0"], response_cache=False, do_retransmits=False
        ) as disp:
            proxy = StatelessProxy(disp, **options)
            disp.set_receiver(proxy)
            yield caller, callee, proxy, disp
        tg.cancel_scope.cancel()


def invite(caller: UDPPeer, uri: str, *headers: str, branch: str = "z9hG4bKinv1") -> bytes:
    return raw(
        "INVITE", uri, caller.address, branch=branch, to="<sip:bob@example.com>", headers=headers
    )


async def nth(peer: UDPPeer, count: int) -> Request | Response:
    message = (await peer.wait_for(count))[count - 1].message
    assert isinstance(message, Request | Response), message
    return message


@pytest.mark.parametrize("nowait", [False, True])
async def test_proxy_require_with_an_unknown_option_gets_420_with_unsupported(
    nowait: bool,
) -> None:
    # Section 16.3 step 5: an option-tag in Proxy-Require that the proxy does
    # not understand gets 420 listing it in Unsupported; never forwarded.
    async with running() as (caller, _callee, proxy, disp):
        if nowait:
            disp.set_receiver(proxy.receive_nowait)
        address = disp.legs[0].address
        # The Request-URI is the caller itself: a forwarded request comes back
        # to it at once instead of a response.
        uri = f"sip:bob@127.0.0.1:{caller.port}"
        await caller.send(invite(caller, uri, branch="z9hG4bKwarm"), address)
        assert isinstance(await nth(caller, 1), Request)  # the targets are known now
        data = invite(caller, uri, "Proxy-Require: foo, 100rel", branch="z9hG4bKpr")
        answer = final(await exchange(caller, address, data))
        assert answer.status == 420
        unsupported = (answer.headers.get("unsupported") or "").replace(" ", "").split(",")
        assert sorted(unsupported) == ["100rel", "foo"]
        # Its ACK stops at the proxy, as for any answer of its own.
        ack = data.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
        await caller.send(ack, address)
        ping = raw("OPTIONS", uri, caller.address, branch="z9hG4bKafter")
        await caller.send(ping, address)
        after = await nth(caller, 3)
        assert isinstance(after, Request)
        assert after.method == "OPTIONS"


async def test_next_hop_strict_router_gets_the_request_uri_in_the_route() -> None:
    # Section 16.6 step 6: a first Route without lr is a strict router; it
    # takes the Route URI as Request-URI and the Request-URI goes last in Route.
    async with running() as (caller, callee, _proxy, disp):
        strict = f"sip:127.0.0.1:{callee.port}"
        data = invite(
            caller, "sip:bob@example.com", f"Route: <{strict}>, <sip:next.example.com;lr>"
        )
        await caller.send(data, disp.legs[0].address)
        request = await nth(callee, 1)
        assert isinstance(request, Request)
        assert request.uri_text == strict
        assert [str(r.uri) for r in request.routes] == [
            "sip:next.example.com;lr",
            "sip:bob@example.com",
        ]


async def test_a_spiral_along_a_route_set_through_the_proxy_twice_is_not_a_loop() -> None:
    # Section 16.6 step 8 / 16.3 step 4: the loop-detection part of the branch
    # depends on everything that affects routing, the Route header included.
    # A request that comes back with a different Route set is spiralling.
    async with running() as (caller, hop, _proxy, disp):
        host, port = disp.legs[0].address
        ours = f"<sip:{host}:{port};lr>"
        theirs = f"<sip:127.0.0.1:{hop.port};lr>"
        data = invite(caller, "sip:bob@example.com", f"Route: {ours}, {theirs}, {ours}, {theirs}")
        await caller.send(data, (host, port))
        first = await nth(hop, 1)
        assert isinstance(first, Request)
        # The hop is a loose router: it removes its Route value, adds its Via,
        # and sends the request on to the next Route, the proxy again.
        assert first.headers.pop_first_value("route") is not None
        first.headers.prepend("Via", f"SIP/2.0/UDP 127.0.0.1:{hop.port};branch=z9hG4bKhop1")
        await hop.send(first, (host, port))
        second = await nth(hop, 2)
        assert isinstance(second, Request), second
        assert [f"<{r.uri}>" for r in second.routes] == [theirs]
        assert second.uri_text == "sip:bob@example.com"
