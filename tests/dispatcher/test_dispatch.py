"""Receiving and routing: bad input, failing receivers, bursts, timers, destinations."""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel
import pytest

from trio_sip import DeliveryError, DeliveryFailure
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response, make_response

from ._peer import raw_request, request, udp_peer

pytestmark = pytest.mark.anyio


async def test_malformed_request_gets_400_with_the_reason() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[object] = []
            disp.set_receiver(lambda *args: seen.append(args))
            good = raw_request("OPTIONS", peer.address, branch="z9hG4bKbad")
            bad = good.replace(b"Max-Forwards: 70", b"Max-Forwards: many")
            await peer.send(
                bad.replace(b"Content-Length: 0", b"Content-Length: 10"), disp.legs[0].address
            )
            await peer.send(b"\x00\x01garbage\r\n\r\n", disp.legs[0].address)
            await peer.wait_for(1)
            await anyio.sleep(0.1)
            assert disp.statistics().dropped == 2
        tg.cancel_scope.cancel()
    assert seen == []
    assert len(peer.arrivals) == 1
    response = peer.arrivals[0].message
    assert isinstance(response, Response)
    assert response.status == 400
    assert "Content-Length" in response.reason
    assert response.top_via.branch == "z9hG4bKbad"


async def test_request_with_a_bad_header_the_receiver_needs_is_not_answered_by_the_dispatcher() -> (
    None
):
    # Max-Forwards is the receiver's business: the dispatcher hands it on.
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[Request | Response] = []
            disp.set_receiver(lambda packet, leg, addr: seen.append(packet))
            good = raw_request("OPTIONS", peer.address, branch="z9hG4bKmf")
            await peer.send(
                good.replace(b"Max-Forwards: 70", b"Max-Forwards: x"), disp.legs[0].address
            )
            await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    assert len(seen) == 1


async def test_response_with_a_foreign_via_is_dropped() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[object] = []
            disp.set_receiver(lambda *args: seen.append(args))
            req = Request("OPTIONS", "sip:x@127.0.0.1")
            foreign = make_response(
                request(
                    "OPTIONS",
                    "sip:x@y",
                    headers=(("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKf"),),
                ),
                200,
            )
            await peer.send(foreign, disp.legs[0].address)
            await anyio.sleep(0.2)
            assert disp.statistics().dropped == 1
            assert req.method == "OPTIONS"
        tg.cancel_scope.cancel()
    assert seen == []


async def test_a_receiver_that_raises_does_not_stop_the_dispatcher() -> None:
    count = 200
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            handled: list[str] = []
            seen = 0
            all_seen = anyio.Event()

            async def receive(packet: Request | Response, leg: object, addr: object) -> None:
                nonlocal seen
                assert isinstance(packet, Request)
                n = int(packet.call_id)
                seen += 1
                if seen == count:
                    all_seen.set()
                if n % 2:
                    raise RuntimeError(f"receiver fails on {n}")
                handled.append(packet.call_id)
                await disp.deliver(make_response(packet, 200, to_tag="t"))

            disp.set_receiver(receive)
            for n in range(count):
                data = raw_request("MESSAGE", peer.address, branch=f"z9hG4bK{n}", call_id=str(n))
                await peer.send(data, disp.legs[0].address)
            with anyio.fail_after(10):
                await peer.wait_for(count // 2)
                # The last packet's handling may still be under way when the
                # peer has its last response: the statistics are read after it.
                await all_seen.wait()
            stats = disp.statistics()
        tg.cancel_scope.cancel()
    assert sorted(map(int, handled)) == list(range(0, count, 2))
    assert stats.receiver_errors == count // 2
    assert len(peer.arrivals) == count // 2


async def test_a_burst_of_datagrams_is_received_without_loss() -> None:
    count = 1000
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            received: list[str] = []
            done = anyio.Event()

            def receive(packet: Request | Response, leg: object, addr: object) -> None:
                received.append(packet.call_id)
                if len(received) == count:
                    done.set()

            disp.set_receiver(receive)
            datagrams = [
                raw_request("MESSAGE", peer.address, branch=f"z9hG4bKb{n}", call_id=str(n))
                for n in range(count)
            ]
            for data in datagrams:  # back to back, no pause between sends
                await peer.send(data, disp.legs[0].address)
            with anyio.fail_after(20):
                await done.wait()
        tg.cancel_scope.cancel()
    assert sorted(map(int, received)) == list(range(count))


async def test_a_burst_reaches_an_async_receiver_in_order() -> None:
    count = 1000
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            received: list[int] = []
            done = anyio.Event()

            async def receive(packet: Request | Response, leg: object, addr: object) -> None:
                received.append(int(packet.call_id))
                await anyio.lowlevel.checkpoint()
                if len(received) == count:
                    done.set()

            disp.set_receiver(receive)
            for n in range(count):
                data = raw_request("MESSAGE", peer.address, branch=f"z9hG4bKo{n}", call_id=str(n))
                await peer.send(data, disp.legs[0].address)
            with anyio.fail_after(20):
                await done.wait()
        tg.cancel_scope.cancel()
    assert received == list(range(count))


@pytest.mark.virtual_time
async def test_add_timer_relative_absolute_repeat_and_cancel() -> None:
    async with Dispatcher([]) as disp:
        start = anyio.current_time()
        fired: list[tuple[str, float]] = []

        def note(name: str) -> None:
            fired.append((name, round(anyio.current_time() - start, 6)))

        disp.add_timer(0, lambda: note("now"))
        disp.add_timer(2.5, lambda: note("relative"))
        handle = disp.add_timer(1, lambda: note("repeat"), repeat=1.5)

        async def async_callback() -> None:
            note("async")

        disp.add_timer(3, async_callback)
        disp.add_timer(time.time() + 10, lambda: note("absolute"))
        await anyio.sleep(5.0)
        handle.cancel()
        await anyio.sleep(10.0)
    names = [name for name, _ in fired]
    assert names.count("repeat") == 3  # at 1, 2.5 and 4
    assert ("now", 0.0) in fired
    assert ("relative", 2.5) in fired
    assert ("async", 3.0) in fired
    assert [t for name, t in fired if name == "repeat"] == [1.0, 2.5, 4.0]
    assert "absolute" in names


async def test_domain2proxy_and_outgoing_proxy() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as proxy_a, udp_peer(tg) as proxy_b:
        routes = {"example.com": f"127.0.0.1:{proxy_a.port}", "*": f"127.0.0.1:{proxy_b.port}"}
        async with Dispatcher(
            ["udp:127.0.0.1:0"], domain2proxy=routes, do_retransmits=False
        ) as disp:
            await disp.deliver(request("MESSAGE", "sip:bob@example.com"))
            await disp.deliver(request("MESSAGE", "sip:bob@sub.deep.example.com"))
            await disp.deliver(request("MESSAGE", "sip:bob@elsewhere.org"))
            await proxy_a.wait_for(2)
            await proxy_b.wait_for(1)
        async with Dispatcher(
            ["udp:127.0.0.1:0"], outgoing_proxy=f"127.0.0.1:{proxy_b.port}", do_retransmits=False
        ) as disp:
            await disp.deliver(request("MESSAGE", "sip:bob@example.com"))
            await proxy_b.wait_for(2)
        tg.cancel_scope.cancel()
    hosts = [str(a.message.uri) for a in proxy_a.arrivals]  # type: ignore[attr-defined]
    assert hosts == ["sip:bob@example.com", "sip:bob@sub.deep.example.com"]


async def test_route_header_is_followed() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as next_hop:
        async with Dispatcher(["udp:127.0.0.1:0"], do_retransmits=False) as disp:
            route = (("Route", f"<sip:127.0.0.1:{next_hop.port};lr>"),)
            await disp.deliver(request("MESSAGE", "sip:bob@192.0.2.99", headers=route))
            await next_hop.wait_for(1)
        tg.cancel_scope.cancel()


async def test_no_leg_for_the_destination_is_no_route() -> None:
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        with pytest.raises(DeliveryError) as err:
            await disp.deliver(request("MESSAGE", "sip:bob@[::1]:5060"))
        assert err.value.reason is DeliveryFailure.NO_ROUTE
        failures: list[DeliveryError | None] = []
        await disp.deliver(request("MESSAGE", "sip:bob@[::1]:5060"), callback=failures.append)
        assert failures[0] is not None
        assert failures[0].reason is DeliveryFailure.NO_ROUTE


async def test_large_request_goes_over_tcp() -> None:
    async with Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as server:
        seen: list[Request | Response] = []
        arrived = anyio.Event()

        def receive(packet: Request | Response, leg: object, addr: object) -> None:
            seen.append(packet)
            arrived.set()

        server.set_receiver(receive)
        udp_port = server.get_legs(proto="udp")[0].port
        tcp_port = server.get_legs(proto="tcp")[0].port
        assert udp_port != tcp_port
        async with Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as client:
            big = request("MESSAGE", f"sip:bob@127.0.0.1:{tcp_port}", body=b"x" * 2000)
            await client.deliver(big)
            with anyio.fail_after(5):
                await arrived.wait()
    assert seen[0].top_via.transport == "TCP"
    assert len(seen[0].body) == 2000


async def test_statistics_count_packets() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"], do_retransmits=False) as disp:
            for _ in range(3):
                await disp.deliver(request("MESSAGE", f"sip:bob@127.0.0.1:{peer.port}"))
            await peer.wait_for(3)
            stats = disp.statistics()
        tg.cancel_scope.cancel()
    assert stats.packets_out == 3
    (leg_stats,) = stats.legs.values()
    assert leg_stats.packets_out == 3
    assert stats.deliveries_pending == 0


async def test_entering_a_running_dispatcher_again_is_a_clear_error() -> None:
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        with pytest.raises(RuntimeError, match="already running"):
            async with disp:
                pass  # never reached: entering failed
        # The first entry is untouched and still works.
        assert disp.legs[0].port != 0


async def test_a_packet_does_not_overtake_one_of_its_source_that_had_to_wait() -> None:
    # A sync receiver answers most packets inline; the first one here has to
    # wait (an awaitable, as a proxy's DNS lookup would be). Its source's later
    # packets queue behind it instead of being handled first.
    count = 5
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            handled: list[int] = []
            all_handled = anyio.Event()

            def note(n: int) -> None:
                handled.append(n)
                if len(handled) == count:
                    all_handled.set()

            async def slowly(n: int) -> None:
                # Until every datagram has been read from the socket (a
                # counter of the leg: there is no event to wait for).
                while disp.legs[0].statistics().packets_in < count:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                note(n)

            def receive(packet: Request | Response, leg: object, addr: object) -> object:
                n = int(packet.call_id)
                if n == 0:
                    return slowly(n)
                note(n)
                return None

            disp.set_receiver(receive)
            for n in range(count):
                data = raw_request("MESSAGE", peer.address, branch=f"z9hG4bKo{n}", call_id=str(n))
                await peer.send(data, disp.legs[0].address)
            with anyio.fail_after(10):
                await all_handled.wait()
        tg.cancel_scope.cancel()
    assert handled == list(range(count))
