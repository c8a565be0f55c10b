"""The Dispatcher on RFC 3263 targets: failover to the next target when one
fails (section 4.3), static routes before DNS. Loopback, virtual time."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest
from tests.dispatcher._peer import UDPPeer, request, udp_peer

from trio_sip import DeliveryError, DeliveryFailure
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import (
    Message,
    Request,
    Response,
    StreamFramer,
    make_response,
    new_tag,
)
from trio_sip.resolver import DNSResolver

from ._dns import DNSServer, Zone, dns_server

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

D = "example.test"
NON_INVITE_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def srv_zone(transport: str, *ports: int) -> Zone:
    """One SRV set, a target per port, priorities in the order given."""
    prefix = {"udp": "_sip._udp", "tcp": "_sip._tcp"}[transport]
    zone = Zone()
    for index, port in enumerate(ports):
        zone.add(f"{prefix}.{D}.", 300, "SRV", f"{index + 1} 0 {port} t{index}.{D}.")
        zone.add(f"t{index}.{D}.", 300, "A", "127.0.0.1")
    return zone


def dns_resolver(server: DNSServer) -> DNSResolver:
    return DNSResolver(
        nameservers=["127.0.0.1"],
        port=server.port,
        system_fallback=False,
        rng=random.Random(1),
    )


@dataclass
class Outcome:
    """What a delivery's callback got, and when."""

    results: list[DeliveryError | None] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    event: anyio.Event = field(default_factory=anyio.Event)

    def __call__(self, error: DeliveryError | None) -> None:
        self.results.append(error)
        self.times.append(anyio.current_time())
        self.event.set()


def branch_of(message: Message) -> str:
    branch = message.top_via.branch
    assert branch is not None
    return branch


async def answer(peer: UDPPeer, index: int, status: int, to: tuple[str, int]) -> Request:
    """Answer the ``index``-th request ``peer`` got with ``status``."""
    await peer.wait_for(index + 1)
    sent = peer.arrivals[index].message
    assert isinstance(sent, Request)
    await peer.send(make_response(sent, status, to_tag=new_tag()), to)
    return sent


async def test_silent_udp_target_times_out_then_the_next_gets_it() -> None:
    outcome = Outcome()
    async with anyio.create_task_group() as tg, udp_peer(tg) as silent, udp_peer(tg) as good:
        async with (
            dns_server(srv_zone("udp", silent.port, good.port)) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            disp.set_receiver(lambda *args: None)
            start = silent.start = good.start = anyio.current_time()
            await disp.deliver(request("OPTIONS", f"sip:bob@{D}"), callback=outcome)
            # Timer F (64*T1) on the first target, then a new transaction.
            second = await answer(good, 0, 200, disp.legs[0].address)
            assert good.times() == [pytest.approx(32.0)]
            await outcome.event.wait()
            assert outcome.results == [None]
            assert outcome.times[0] - start == pytest.approx(32.0)
            assert disp.statistics().deliveries_pending == 0
            assert disp.statistics().failures == {}
        tg.cancel_scope.cancel()
    assert silent.times() == NON_INVITE_TIMES
    assert branch_of(second) != branch_of(silent.arrivals[0].message)


async def test_every_target_silent_reports_one_timeout_at_the_end() -> None:
    outcome = Outcome()
    async with anyio.create_task_group() as tg, udp_peer(tg) as one, udp_peer(tg) as two:
        async with (
            dns_server(srv_zone("udp", one.port, two.port)) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            start = one.start = two.start = anyio.current_time()
            await disp.deliver(request("INVITE", f"sip:bob@{D}"), callback=outcome)
            await outcome.event.wait()
            await anyio.sleep(10)
            assert disp.statistics().failures == {"timeout": 1}
        tg.cancel_scope.cancel()
    assert len(outcome.results) == 1
    error = outcome.results[0]
    assert isinstance(error, DeliveryError)
    assert error.reason is DeliveryFailure.TIMEOUT
    assert outcome.times[0] - start == pytest.approx(64.0)
    assert one.times() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert two.times() == [32, 32.5, 33.5, 35.5, 39.5, 47.5, 63.5]


async def test_503_moves_an_invite_on_and_is_acked_not_handed_up() -> None:
    outcome = Outcome()
    received: list[Request | Response] = []
    async with anyio.create_task_group() as tg, udp_peer(tg) as busy, udp_peer(tg) as good:
        async with (
            dns_server(srv_zone("udp", busy.port, good.port)) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            disp.set_receiver(lambda packet, leg, addr: received.append(packet))
            leg = disp.legs[0].address
            busy.start = good.start = anyio.current_time()
            await disp.deliver(request("INVITE", f"sip:bob@{D}"), callback=outcome)
            first = await busy.wait_for(1)
            invite = first[0].message
            assert isinstance(invite, Request)
            unavailable = make_response(invite, 503, to_tag=new_tag())
            await busy.send(unavailable, leg)
            arrivals = await busy.wait_for(2)
            ack = arrivals[1].message
            assert isinstance(ack, Request)
            assert ack.method == "ACK"
            assert branch_of(ack) == branch_of(invite)
            # The 503's retransmission is ACKed again and absorbed.
            await busy.send(unavailable, leg)
            await busy.wait_for(3)
            again = busy.arrivals[2].message
            assert isinstance(again, Request)
            assert again.method == "ACK"
            second = await answer(good, 0, 200, leg)
            assert branch_of(second) != branch_of(invite)
            await outcome.event.wait()
            await anyio.sleep(1)
        tg.cancel_scope.cancel()
    assert outcome.results == [None]
    assert [p.status for p in received if isinstance(p, Response)] == [200]
    assert good.times() == [0]


async def test_503_from_every_target_reaches_the_receiver_once() -> None:
    outcome = Outcome()
    received: list[Request | Response] = []
    async with anyio.create_task_group() as tg, udp_peer(tg) as one, udp_peer(tg) as two:
        async with (
            dns_server(srv_zone("udp", one.port, two.port)) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            disp.set_receiver(lambda packet, leg, addr: received.append(packet))
            leg = disp.legs[0].address
            await disp.deliver(request("OPTIONS", f"sip:bob@{D}"), callback=outcome)
            await answer(one, 0, 503, leg)
            await answer(two, 0, 503, leg)
            await outcome.event.wait()
            await anyio.sleep(1)
        tg.cancel_scope.cancel()
    # The last target's answer is the outcome: the TU decides what a 503 means.
    assert outcome.results == [None]
    assert [p.status for p in received if isinstance(p, Response)] == [503]


@dataclass
class TCPPeer:
    """A TCP SIP server that answers every request with ``status``."""

    listener: anyio.abc.Listener[anyio.abc.SocketStream]
    status: int
    requests: list[Request] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` requests have arrived (bounded)."""
        with anyio.fail_after(60):
            while len(self.requests) < count:
                self.changed = anyio.Event()
                await self.changed.wait()

    @property
    def port(self) -> int:
        return int(self.listener.extra(anyio.abc.SocketAttribute.local_port))

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        framer = StreamFramer()
        async with stream:
            try:
                async for chunk in stream:
                    for msg in framer.feed(chunk):
                        if isinstance(msg, Request):
                            self.requests.append(msg)
                            self.changed.set()
                            await stream.send(bytes(make_response(msg, self.status, to_tag="t")))
            except anyio.BrokenResourceError:
                return  # the dispatcher closed the connection


@asynccontextmanager
async def tcp_peer(status: int) -> AsyncIterator[TCPPeer]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        peer = TCPPeer(listener, status)
        tg.start_soon(listener.serve, peer._serve)
        try:
            yield peer
        finally:
            tg.cancel_scope.cancel()


async def closed_tcp_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as probe:
        return int(probe.extra(anyio.abc.SocketAttribute.local_port))


async def test_refused_tcp_target_moves_on_at_once() -> None:
    outcome = Outcome()
    refused = await closed_tcp_port()
    async with (
        tcp_peer(200) as good,
        dns_server(srv_zone("tcp", refused, good.port)) as server,
        Dispatcher(["tcp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
    ):
        disp.set_receiver(lambda *args: None)
        start = anyio.current_time()
        await disp.deliver(request("OPTIONS", f"sip:bob@{D};transport=tcp"), callback=outcome)
        await outcome.event.wait()
        assert outcome.results == [None]
        assert outcome.times[0] - start < 1.0
        await good.wait_for(1)


async def test_tcp_503_moves_on_and_every_refusal_fails_the_delivery() -> None:
    outcome = Outcome()
    async with (
        tcp_peer(503) as busy,
        tcp_peer(200) as good,
        dns_server(srv_zone("tcp", busy.port, good.port)) as server,
        Dispatcher(["tcp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
    ):
        disp.set_receiver(lambda *args: None)
        await disp.deliver(request("OPTIONS", f"sip:bob@{D};transport=tcp"), callback=outcome)
        # Sent over TCP to the last target: delivered, as far as we can tell.
        await outcome.event.wait()
        assert outcome.results == [None]
        await good.wait_for(1)
        assert len(busy.requests) == 1
    refused = [await closed_tcp_port(), await closed_tcp_port()]
    failed = Outcome()
    async with (
        dns_server(srv_zone("tcp", *refused)) as server,
        Dispatcher(["tcp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
    ):
        await disp.deliver(request("OPTIONS", f"sip:bob@{D};transport=tcp"), callback=failed)
        assert len(failed.results) == 1
        error = failed.results[0]
        assert isinstance(error, DeliveryError)
        assert error.reason is DeliveryFailure.CONNECTION_REFUSED


async def test_naptr_picks_a_transport_the_dispatcher_has() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        zone = (
            Zone()
            .add(
                f"{D}.",
                300,
                "NAPTR",
                f'10 10 "s" "SIP+D2T" "" _sip._tcp.{D}.',
                f'10 20 "s" "SIP+D2U" "" _sip._udp.{D}.',
            )
            .add(f"_sip._tcp.{D}.", 300, "SRV", f"0 0 {peer.port} t.{D}.")
            .add(f"_sip._udp.{D}.", 300, "SRV", f"0 0 {peer.port} t.{D}.")
            .add(f"t.{D}.", 300, "A", "127.0.0.1")
        )
        async with (
            dns_server(zone) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            await disp.deliver(request("OPTIONS", f"sip:bob@{D}"), callback=lambda e: None)
            await peer.wait_for(1)
            assert disp.statistics().failures == {}
        tg.cancel_scope.cancel()
    assert peer.arrivals[0].message.top_via.transport == "UDP"


async def test_static_routes_win_over_dns() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as proxy:
        async with dns_server(srv_zone("udp", 9)) as server:
            resolver = dns_resolver(server)
            routes = {
                "domain2proxy": {D: f"127.0.0.1:{proxy.port}"},
                "outgoing_proxy": f"127.0.0.1:{proxy.port}",
            }
            for key, value in routes.items():
                options = {key: value}
                async with Dispatcher(
                    ["udp:127.0.0.1:0"],
                    resolver=resolver,
                    **options,  # type: ignore[arg-type]
                ) as disp:
                    await disp.deliver(request("OPTIONS", f"sip:bob@{D}"), callback=lambda e: None)
            await proxy.wait_for(2)
            assert server.queries == []
        tg.cancel_scope.cancel()


async def test_domain2proxy_name_without_port_goes_through_srv() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as proxy:
        zone = srv_zone("udp", proxy.port)
        async with (
            dns_server(zone) as server,
            Dispatcher(
                ["udp:127.0.0.1:0"],
                resolver=dns_resolver(server),
                domain2proxy={"*": D},
            ) as disp,
        ):
            await disp.deliver(
                request("OPTIONS", "sip:bob@elsewhere.test"), callback=lambda e: None
            )
            await proxy.wait_for(1)
            assert server.count(f"_sip._udp.{D}", "SRV") == 1
        tg.cancel_scope.cancel()


async def test_a_timeout_is_reported_when_no_leg_reaches_the_rest() -> None:
    outcome = Outcome()
    async with anyio.create_task_group() as tg, udp_peer(tg) as silent:
        zone = (
            Zone()
            .add(f"_sip._udp.{D}.", 300, "SRV", f"1 0 {silent.port} v4.{D}.", f"2 0 5060 v6.{D}.")
            .add(f"v4.{D}.", 300, "A", "127.0.0.1")
            .add(f"v6.{D}.", 300, "AAAA", "::1")
        )
        async with (
            dns_server(zone) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            await disp.deliver(request("OPTIONS", f"sip:bob@{D}"), callback=outcome)
            await outcome.event.wait()
        tg.cancel_scope.cancel()
    assert len(outcome.results) == 1
    error = outcome.results[0]
    assert isinstance(error, DeliveryError)
    # The IPv6 target has no leg: the timeout of the one tried is the news.
    assert error.reason is DeliveryFailure.TIMEOUT


async def test_late_2xx_from_an_abandoned_target_is_handed_up_alone() -> None:
    outcome = Outcome()
    received: list[tuple[Request | Response, tuple[str, int]]] = []
    arrived = anyio.Event()

    def receive(packet: Request | Response, leg: object, addr: tuple[str, int]) -> None:
        received.append((packet, addr))
        arrived.set()

    async with anyio.create_task_group() as tg, udp_peer(tg) as late, udp_peer(tg) as good:
        async with (
            dns_server(srv_zone("udp", late.port, good.port)) as server,
            Dispatcher(["udp:127.0.0.1:0"], resolver=dns_resolver(server)) as disp,
        ):
            disp.set_receiver(receive)
            sources = [late.address, good.address]
            leg = disp.legs[0].address
            await disp.deliver(request("INVITE", f"sip:bob@{D}"), callback=outcome)
            await good.wait_for(1)  # Timer B ended the first attempt
            # The first target answers after all: its dialog reaches the TU,
            # but the INVITE in flight to the second target is not touched.
            await answer(late, 0, 200, leg)
            with anyio.fail_after(5):
                await arrived.wait()
            assert disp.statistics().deliveries_pending == 1
            assert outcome.results == []
            await answer(good, 0, 180, leg)
            await outcome.event.wait()
        tg.cancel_scope.cancel()
    assert outcome.results == [None]
    statuses = [(p.status, addr) for p, addr in received if isinstance(p, Response)]
    assert statuses == [(200, sources[0]), (180, sources[1])]
