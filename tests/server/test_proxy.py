"""The stateless proxy over loopback: every rule of RFC 3261 section 16.11 we use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.errors import TransportError
from trio_sip.message import URI, Request, Response, make_response, parse_message
from trio_sip.message.digest import authorize, parse_challenges
from trio_sip.server import (
    Authorize,
    Binding,
    MemoryStore,
    ReceiveChain,
    Registrar,
    StatelessProxy,
)

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(
    legs: tuple[str, ...] = ("udp:127.0.0.1:0",), **options: Any
) -> AsyncIterator[tuple[UDPPeer, UDPPeer, StatelessProxy, Dispatcher]]:
    async with anyio.create_task_group() as tg, udp_peer(tg) as caller, udp_peer(tg) as callee:
        async with Dispatcher(legs, response_cache=False, do_retransmits=False) as disp:
            proxy = StatelessProxy(disp, **options)
            disp.set_receiver(proxy)
            yield caller, callee, proxy, disp
        tg.cancel_scope.cancel()


def invite(
    caller: UDPPeer, uri: str, *headers: str, branch: str = "z9hG4bKinv1", **kw: Any
) -> bytes:
    return raw(
        "INVITE",
        uri,
        caller.address,
        branch=branch,
        to="<sip:bob@example.com>",
        headers=headers,
        **kw,
    )


async def forwarded(peer: UDPPeer, count: int) -> Request:
    message = (await peer.wait_for(count))[count - 1].message
    assert isinstance(message, Request), message
    return message


def proxy_address(disp: Dispatcher) -> tuple[str, int]:
    return disp.legs[0].address


async def test_request_is_forwarded_and_the_response_comes_back() -> None:
    async with running() as (caller, callee, proxy, disp):
        await caller.send(invite(caller, f"sip:bob@127.0.0.1:{callee.port}"), proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.max_forwards == 69
        assert len(request.via) == 2
        top = request.top_via
        assert disp.legs[0].is_our_via(top)
        assert top.has_magic_cookie
        assert top.rport is True
        assert request.via[1].branch == "z9hG4bKinv1"
        # The callee answers to the proxy, as its top Via says.
        await callee.send(make_response(request, 180, to_tag="t1"), proxy_address(disp))
        response = final((await caller.wait_for(1))[0].message)
        assert response.status == 180
        assert [v.branch for v in response.via] == ["z9hG4bKinv1"]
        assert proxy.statistics().requests_forwarded == 1
        assert proxy.statistics().responses_forwarded == 1


async def test_retransmission_cancel_and_non_2xx_ack_keep_the_invites_branch() -> None:
    async with running() as (caller, callee, _proxy, disp):
        uri = f"sip:bob@127.0.0.1:{callee.port}"
        data = invite(caller, uri)
        await caller.send(data, proxy_address(disp))
        await caller.send(data, proxy_address(disp))
        cancel = data.replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
        await caller.send(cancel, proxy_address(disp))
        ack = data.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
        ack = ack.replace(b"<sip:bob@example.com>", b"<sip:bob@example.com>;tag=t1")
        await caller.send(ack, proxy_address(disp))
        other = invite(caller, uri, branch="z9hG4bKinv2", call_id="call-2")
        await caller.send(other, proxy_address(disp))
        arrivals = await callee.wait_for(5)
        branches = [a.message.top_via.branch for a in arrivals]
        assert [a.message.cseq.method for a in arrivals] == [
            "INVITE",
            "INVITE",
            "CANCEL",
            "ACK",
            "INVITE",
        ]
        assert len(set(branches[:4])) == 1
        assert branches[4] != branches[0]


async def test_max_forwards_zero_gets_483_and_its_ack_is_absorbed() -> None:
    async with running() as (caller, callee, proxy, disp):
        data = invite(caller, f"sip:bob@127.0.0.1:{callee.port}", max_forwards=0)
        response = final(await exchange(caller, proxy_address(disp), data))
        assert response.status == 483
        ack = data.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
        await caller.send(ack, proxy_address(disp))
        missing = invite(
            caller, f"sip:bob@127.0.0.1:{callee.port}", max_forwards=None, branch="z9hG4bKmf"
        )
        await caller.send(missing, proxy_address(disp))
        request = await forwarded(callee, 1)
        # The ACK stopped at the proxy; a request without Max-Forwards got 70.
        assert request.top_via.params.get("branch") != "z9hG4bKinv1"
        assert request.max_forwards == 70
        await anyio.sleep(0.1)
        assert len(callee.arrivals) == 1
        assert proxy.statistics().answered == 1


async def test_a_request_that_comes_back_is_a_loop() -> None:
    async with running() as (caller, _callee, _proxy, disp):
        # The Request-URI names the proxy itself: it forwards to itself once.
        host, port = proxy_address(disp)
        response = final(
            await exchange(caller, (host, port), invite(caller, f"sip:bob@{host}:{port}"))
        )
        assert response.status == 482


async def test_own_route_is_removed_and_the_next_route_is_followed() -> None:
    async with running() as (caller, callee, _proxy, disp):
        host, port = proxy_address(disp)
        data = invite(
            caller,
            "sip:bob@192.0.2.99",
            f"Route: <sip:{host}:{port};lr>, <sip:127.0.0.1:{callee.port};lr>",
        )
        await caller.send(data, proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.uri_text == "sip:bob@192.0.2.99"
        assert [str(r.uri) for r in request.routes] == [f"sip:127.0.0.1:{callee.port};lr"]


async def test_strict_router_before_us_is_undone() -> None:
    async with running() as (caller, callee, _proxy, disp):
        host, port = proxy_address(disp)
        data = invite(caller, f"sip:{host}:{port};lr", f"Route: <sip:bob@127.0.0.1:{callee.port}>")
        await caller.send(data, proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.uri_text == f"sip:bob@127.0.0.1:{callee.port}"
        assert "route" not in request.headers


async def test_record_route_when_configured() -> None:
    async with running(record_route=True) as (caller, callee, _proxy, disp):
        await caller.send(invite(caller, f"sip:bob@127.0.0.1:{callee.port}"), proxy_address(disp))
        request = await forwarded(callee, 1)
        host, port = proxy_address(disp)
        assert [str(r.uri) for r in request.record_routes] == [f"sip:{host}:{port};lr"]


async def test_registered_user_is_reached_by_aor_and_unknown_gets_404() -> None:
    async with running() as (caller, callee, _p, disp):
        store = MemoryStore()
        registrar = Registrar(disp, store, domains=["example.com"])
        proxy = StatelessProxy(disp, registrar=registrar, domains=["example.com"])
        disp.set_receiver(proxy)
        contact = f"sip:bob@127.0.0.1:{callee.port}"
        await store.replace(
            "sip:bob@example.com", [Binding("sip:bob@example.com", contact, 2e9, "c", 1)]
        )
        await caller.send(invite(caller, "sip:bob@example.com"), proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.uri_text == contact
        unknown = invite(caller, "sip:carol@example.com", branch="z9hG4bKcarol")
        assert final(await exchange(caller, proxy_address(disp), unknown)).status == 404


async def test_no_open_relay() -> None:
    options = {"domains": ["example.com"]}
    async with running(**options) as (caller, callee, proxy, disp):
        foreign = f"sip:bob@127.0.0.1:{callee.port}"
        stranger = invite(caller, foreign, from_="<sip:eve@example.org>;tag=e")
        response = final(await exchange(caller, proxy_address(disp), stranger))
        assert response.status == 403
        ours = invite(caller, foreign, branch="z9hG4bKours", from_="<sip:alice@example.com>;tag=a")
        await caller.send(ours, proxy_address(disp))
        assert (await forwarded(callee, 1)).uri_text == foreign
        assert proxy.statistics().answered == 1


async def test_response_that_is_not_ours_to_forward_is_dropped() -> None:
    async with running() as (caller, _callee, proxy, disp):
        host, port = proxy_address(disp)
        # Our Via is the only one: nobody to forward to.
        lone = (
            f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {host}:{port};branch=z9hG4bKx\r\n"
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        assert isinstance(parse_message(lone), Response)
        await caller.send(lone, (host, port))
        await anyio.sleep(0.2)
        assert proxy.statistics().dropped == 1
        assert caller.arrivals == []


async def _read_message(stream: anyio.abc.ByteStream) -> Request | Response:
    data = b""
    with anyio.fail_after(10):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
    message = parse_message(data)
    assert isinstance(message, Request | Response)
    return message


async def test_udp_in_tcp_out_with_double_record_route_and_the_way_back() -> None:
    legs = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")
    async with running(legs, record_route=True) as (caller, _callee, proxy, disp):
        udp_leg, tcp_leg = disp.legs
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        assert isinstance(listener, anyio.abc.SocketListener)
        tcp_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            data = invite(
                caller,
                f"sip:bob@127.0.0.1:{tcp_port};transport=tcp",
                f"Contact: <sip:alice@127.0.0.1:{caller.port}>",
            )
            await caller.send(data, udp_leg.address)
            with anyio.fail_after(10):
                stream = await listener.accept()
            async with stream:
                request = await _read_message(stream)
                assert isinstance(request, Request)
                assert request.top_via.transport == "TCP"
                assert tcp_leg.is_our_via(request.top_via)
                # One Record-Route per leg: the callee's side on top.
                assert [str(r.uri) for r in request.record_routes] == [
                    f"sip:127.0.0.1:{tcp_leg.port};transport=tcp;lr",
                    f"sip:127.0.0.1:{udp_leg.port};lr",
                ]
                ok = make_response(request, 200, to_tag="t9")
                await stream.send(bytes(ok))
                response = final((await caller.wait_for(1))[0].message)
                assert response.status == 200
                assert len(response.via) == 1
                # In-dialog BYE from the callee along its route set, over TCP.
                routes = ", ".join(f"<{r.uri}>" for r in request.record_routes)
                bye = (
                    f"BYE sip:alice@127.0.0.1:{caller.port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/TCP 127.0.0.1:{tcp_port};branch=z9hG4bKbye\r\n"
                    f"Route: {routes}\r\nMax-Forwards: 70\r\n"
                    "From: <sip:bob@example.com>;tag=t9\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
                    "Call-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
                )
                await stream.send(bye.encode())
                arrived = (await caller.wait_for(2))[1].message
                assert isinstance(arrived, Request)
                assert arrived.method == "BYE"
                assert "route" not in arrived.headers
                assert udp_leg.is_our_via(arrived.top_via)
    assert proxy.statistics().requests_forwarded == 2


async def test_authorize_in_front_of_the_proxy_challenges_with_407_and_keeps_the_ack() -> None:
    async with running() as (caller, callee, proxy, disp):
        auth = Authorize(disp, "example.com", {"alice": "secret"}, proxy=True)
        disp.set_receiver(ReceiveChain([auth, proxy]))
        uri = f"sip:bob@127.0.0.1:{callee.port}"
        data = invite(caller, uri, from_="<sip:alice@example.com>;tag=a1")
        challenge = final(await exchange(caller, proxy_address(disp), data))
        assert challenge.status == 407
        ack = data.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
        await caller.send(ack, proxy_address(disp))
        chosen = parse_challenges(challenge.headers.get("Proxy-Authenticate") or "")[0]
        creds = authorize(chosen, username="alice", password="secret", method="INVITE", uri=uri)
        second = invite(
            caller,
            uri,
            f"Proxy-Authorization: {creds}",
            branch="z9hG4bKinv2",
            cseq=2,
            from_="<sip:alice@example.com>;tag=a1",
        )
        await caller.send(second, proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.cseq.seq == 2
        await anyio.sleep(0.1)
        # The ACK of the 407 never reached the callee.
        assert [a.message.cseq.method for a in callee.arrivals] == ["INVITE"]


async def test_contacts_are_rewritten_between_legs_and_lead_back() -> None:
    legs = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")
    async with running(legs, rewrite_contact=True) as (caller, _callee, proxy, disp):
        udp_leg, tcp_leg = disp.legs
        listener = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners[0]
        assert isinstance(listener, anyio.abc.SocketListener)
        tcp_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            alice = f"sip:alice@127.0.0.1:{caller.port}"
            data = invite(
                caller, f"sip:bob@127.0.0.1:{tcp_port};transport=tcp", f"Contact: <{alice}>"
            )
            await caller.send(data, udp_leg.address)
            with anyio.fail_after(10):
                stream = await listener.accept()
            async with stream:
                request = await _read_message(stream)
                (contact,) = request.contacts
                # The callee sees a URI of the proxy's TCP leg, not alice's UDP address.
                assert (contact.uri.host, contact.uri.port) == tcp_leg.address
                assert contact.uri.transport == "tcp"
                assert proxy.encode_contact(URI.parse(alice), tcp_leg) == contact.uri
                ok = make_response(
                    request,
                    200,
                    to_tag="t9",
                    headers=[("Contact", f"<sip:bob@127.0.0.1:{tcp_port};transport=tcp>")],
                )
                await stream.send(bytes(ok))
                response = final((await caller.wait_for(1))[0].message)
                (back,) = response.contacts
                assert (back.uri.host, back.uri.port) == udp_leg.address
                # BYE from the callee to the rewritten Contact reaches alice.
                bye = (
                    f"BYE {contact.uri} SIP/2.0\r\n"
                    f"Via: SIP/2.0/TCP 127.0.0.1:{tcp_port};branch=z9hG4bKbye\r\n"
                    "Max-Forwards: 70\r\n"
                    "From: <sip:bob@example.com>;tag=t9\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
                    "Call-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
                )
                await stream.send(bye.encode())
                arrived = (await caller.wait_for(2))[1].message
                assert isinstance(arrived, Request)
                assert arrived.method == "BYE"
                assert arrived.uri_text == alice


async def test_a_forged_rewritten_contact_is_not_followed() -> None:
    async with running(rewrite_contact=True) as (caller, callee, proxy, disp):
        leg = disp.legs[0]
        real = proxy.encode_contact(URI.parse(f"sip:bob@127.0.0.1:{callee.port}"), leg)
        assert real.user is not None
        token, _, mac = real.user.rpartition(".")
        other = "0" * len(mac) if mac != "0" * len(mac) else "1" * len(mac)
        forged = real.replace(user=f"{token}.{other}")
        response = final(await exchange(caller, leg.address, invite(caller, str(forged))))
        # Not decoded: the URI names the proxy itself, which is a loop.
        assert response.status == 482
        genuine = invite(caller, str(real), branch="z9hG4bKreal")
        await caller.send(genuine, leg.address)
        assert (await forwarded(callee, 1)).uri_text == f"sip:bob@127.0.0.1:{callee.port}"


@pytest.mark.parametrize("nowait", [False, True])
async def test_options_for_the_proxy_itself_is_answered_not_forwarded(nowait: bool) -> None:
    async with running() as (caller, callee, proxy, disp):
        if nowait:
            disp.set_receiver(proxy.receive_nowait)
        host, port = proxy_address(disp)
        ping = raw("OPTIONS", f"sip:{host}:{port}", caller.address, branch="z9hG4bKping")
        response = final(await exchange(caller, proxy_address(disp), ping))
        assert response.status == 200
        assert "INVITE" in (response.headers.get("allow") or "")
        # An OPTIONS for a user behind the proxy is still forwarded.
        other = raw(
            "OPTIONS", f"sip:bob@127.0.0.1:{callee.port}", caller.address, branch="z9hG4bKo2"
        )
        await caller.send(other, proxy_address(disp))
        request = await forwarded(callee, 1)
        assert request.method == "OPTIONS"


class _StoreDown(MemoryStore):
    """A location store that cannot be reached (a shared store's server is down)."""

    async def get(self, aor: str) -> list[Binding]:
        await anyio.lowlevel.checkpoint()
        raise TransportError("connection refused")


async def test_location_service_down_is_503_with_retry_after() -> None:
    async with running() as (caller, _callee, _p, disp):
        registrar = Registrar(disp, _StoreDown(), domains=["example.com"])
        proxy = StatelessProxy(disp, registrar=registrar, domains=["example.com"])
        disp.set_receiver(proxy)
        answer = final(
            await exchange(caller, proxy_address(disp), invite(caller, "sip:bob@example.com"))
        )
        assert answer.status == 503
        assert answer.headers.get("retry-after") == "5"
        # The proxy is still there: the next request is answered too.
        again = invite(caller, "sip:bob@example.com", branch="z9hG4bKagain")
        assert final(await exchange(caller, proxy_address(disp), again)).status == 503
