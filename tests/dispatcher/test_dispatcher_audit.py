"""Where responses go and how requests are routed: RFC 3261 sections 8.1.2,
17.2.1 and 18.2.2, RFC 3581 section 4, RFC 3263 section 5."""

from __future__ import annotations

from collections.abc import Collection

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.errors import ResolveError, ResolveFailure
from trio_sip.message import URI, Request, Response, make_response
from trio_sip.resolver import Target

from ._peer import raw_request, request, udp_peer

pytestmark = pytest.mark.anyio


def _response_with_via(via: str) -> Response:
    """A 200 to a MESSAGE whose top Via is ``via``."""
    req = request("MESSAGE", "sip:bob@127.0.0.1", headers=(("Via", via),))
    return make_response(req, 200, to_tag="b1")


async def test_a_stream_response_without_its_connection_goes_to_the_sent_by_port() -> None:
    # RFC 3261 18.2.2: over a reliable transport whose connection is gone, the
    # server opens a connection to received "using the port in the sent-by";
    # RFC 3581 section 4 sends to rport only over unreliable transports. The
    # rport of a TCP request is the client's ephemeral source port, on which
    # nothing listens.
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        Dispatcher(["tcp:127.0.0.1:0"]) as disp,
    ):
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        probe = await anyio.create_tcp_listener(local_host="127.0.0.1")
        closed_port = probe.extra(anyio.abc.SocketAttribute.local_port)
        await probe.aclose()
        via = (
            f"SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKgone"
            f";received=127.0.0.1;rport={closed_port}"
        )
        response = _response_with_via(via)
        assert await disp.response_target(response) == Target("tcp", "127.0.0.1", port)
        assert Dispatcher.response_target_nowait(response) == Target("tcp", "127.0.0.1", port)
        received: list[bytes] = []
        got = anyio.Event()

        async def accept(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                received.append(await stream.receive())
                got.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, accept)
            await disp.deliver(response)
            with anyio.fail_after(10):
                await got.wait()
            tg.cancel_scope.cancel()
    assert received[0].startswith(b"SIP/2.0 200 ")


async def test_maddr_wins_over_received_and_rport_on_udp() -> None:
    # RFC 3261 18.2.2: "Otherwise, if the Via header field value contains a
    # maddr parameter, the response MUST be forwarded to the address listed
    # there, using the port indicated in sent-by"; received comes after it.
    # RFC 3581 section 4 uses received/rport only when there is no maddr.
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            via = (
                f"SIP/2.0/UDP 192.0.2.1:{peer.port};branch=z9hG4bKm;maddr=127.0.0.1"
                ";received=192.0.2.7;rport=7"
            )
            response = _response_with_via(via)
            expected = Target("udp", "127.0.0.1", peer.port)
            assert Dispatcher.response_target_nowait(response) == expected
            assert await disp.response_target(response) == expected
            await disp.deliver(response)
            await peer.wait_for(1)
        tg.cancel_scope.cancel()
    assert isinstance(peer.arrivals[0].message, Response)


@pytest.mark.parametrize(
    "route",
    [
        pytest.param({"outgoing_proxy": "127.0.0.1:5070"}, id="outgoing proxy"),
        pytest.param({"domain2proxy": {"*": "127.0.0.1:5070"}}, id="domain2proxy"),
        pytest.param({"route": "<sip:127.0.0.1:5070;lr>"}, id="Route"),
    ],
)
async def test_a_sips_request_never_leaves_over_udp(route: dict[str, object]) -> None:
    # RFC 3261 8.1.2: "if the Request-URI specifies a SIPS resource, the UAC
    # MUST follow the procedures of [RFC 3263] as if the input URI were a
    # SIPS URI", whatever the next hop (outbound proxy, Route) is written as;
    # and a SIPS resource is reached over TLS on every hop (26.2.2).
    headers: tuple[tuple[str, str], ...] = ()
    options = dict(route)
    if "route" in options:
        headers = (("Route", str(options.pop("route"))),)
    async with Dispatcher(
        ["udp:127.0.0.1:0", {"proto": "tls", "addr": "127.0.0.1", "port": 0}],
        **options,  # type: ignore[arg-type]
    ) as disp:
        targets = await disp.targets_for(
            request("MESSAGE", "sips:bob@example.com", headers=headers)
        )
    assert targets
    assert {t.transport for t in targets} == {"tls"}


@pytest.mark.virtual_time
async def test_an_ack_after_64_t1_from_the_request_still_ends_the_final_response() -> None:
    # RFC 3261 17.2.1: Timer H (64*T1) starts when the final response is
    # sent, and while it runs an ACK ends the retransmission of a non-2xx
    # response (Timer G) and is absorbed. Here the INVITE rang for 20 s, the
    # peer's first ACKs were lost, and its ACK at 36 s answers the 486 sent
    # again at 35.5 s.
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[Request] = []

            async def receive(packet: Request | Response, leg: object, addr: object) -> None:
                assert isinstance(packet, Request)
                seen.append(packet)
                if packet.method == "INVITE":
                    await anyio.sleep(20)
                    await disp.deliver(make_response(packet, 486, to_tag="srv"))

            disp.set_receiver(receive)
            start = peer.start = anyio.current_time()
            invite = raw_request("INVITE", peer.address, branch="z9hG4bKlate")
            await peer.send(invite, disp.legs[0].address)
            await anyio.sleep_until(start + 36)
            count = len(peer.arrivals)
            ack = invite.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
            ack = ack.replace(b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=srv")
            await peer.send(ack, disp.legs[0].address)
            await anyio.sleep_until(start + 70)
            pending = disp.statistics().deliveries_pending
        tg.cancel_scope.cancel()
    assert peer.times()[:count] == [20, 20.5, 21.5, 23.5, 27.5, 31.5, 35.5]
    assert len(peer.arrivals) == count  # nothing after the ACK
    assert pending == 0
    assert [r.method for r in seen] == ["INVITE"]  # the ACK was absorbed


class _SRVResolver:
    """A resolver for one name: SRV (no port asked) gives ``srv``, in order;
    A/AAAA (a port asked) gives 127.0.0.1 on that port."""

    def __init__(self, name: str, srv: list[Target]) -> None:
        self.name = name
        self.srv = srv
        self.asked: list[URI] = []

    async def resolve(self, uri: URI, *, transports: Collection[str] | None = None) -> list[Target]:
        self.asked.append(uri)
        if uri.host != self.name:
            raise ResolveError(ResolveFailure.NOT_FOUND, f"no {uri.host}")
        if uri.port is not None:
            return [Target(uri.transport or "udp", "127.0.0.1", uri.port, uri.host)]
        return self.srv


async def test_a_sent_by_name_without_port_is_looked_up_as_srv_with_failover() -> None:
    # RFC 3263 section 5: "If, however, the sent-by field contained a domain
    # name and no port, the server queries for SRV records at that domain
    # name ... As in the client processing, the next entry in the list is
    # tried if the one before it results in a failure."
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        probe = await anyio.create_tcp_listener(local_host="127.0.0.1")
        closed_port = probe.extra(anyio.abc.SocketAttribute.local_port)
        await probe.aclose()
        resolver = _SRVResolver(
            "client.example.test",
            [
                Target("tcp", "127.0.0.1", closed_port, "client.example.test"),
                Target("tcp", "127.0.0.1", port, "client.example.test"),
            ],
        )
        received: list[bytes] = []
        got = anyio.Event()

        async def accept(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                received.append(await stream.receive())
                got.set()

        async with (
            Dispatcher(["tcp:127.0.0.1:0"], resolver=resolver) as disp,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(listener.serve, accept)
            response = _response_with_via("SIP/2.0/TCP client.example.test;branch=z9hG4bKsrv")
            assert await disp.response_target(response) == resolver.srv[0]
            await disp.deliver(response)
            with anyio.fail_after(10):
                await got.wait()
            tg.cancel_scope.cancel()
    assert received[0].startswith(b"SIP/2.0 200 ")
    assert all(uri.port is None and uri.transport == "tcp" for uri in resolver.asked)
