"""Retransmission and redelivery, exactly on RFC 3261's schedule (virtual time)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from trio_sip import DeliveryError, DeliveryFailure
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response, make_response, new_tag, parse_message

from ._peer import raw_request, request, udp_peer

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

INVITE_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
NON_INVITE_TIMES = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


async def _deliver_to_silent_peer(method: str) -> tuple[list[float], DeliveryError | None, float]:
    errors: list[DeliveryError | None] = []
    done = anyio.Event()

    def callback(error: DeliveryError | None) -> None:
        errors.append(error)
        done.set()

    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            peer.start = anyio.current_time()
            await disp.deliver(request(method, f"sip:bob@127.0.0.1:{peer.port}"), callback=callback)
            await done.wait()
            ended = anyio.current_time() - peer.start
            assert disp.statistics().deliveries_pending == 0
        tg.cancel_scope.cancel()
    assert len(errors) == 1
    return peer.times(), errors[0], ended


async def test_invite_retransmits_on_timer_a_until_timer_b() -> None:
    times, error, ended = await _deliver_to_silent_peer("INVITE")
    assert times == INVITE_TIMES
    assert error is not None
    assert error.reason is DeliveryFailure.TIMEOUT
    assert ended == pytest.approx(32.0)


async def test_non_invite_retransmits_capped_at_t2_until_timer_f() -> None:
    times, error, ended = await _deliver_to_silent_peer("OPTIONS")
    assert times == NON_INVITE_TIMES
    assert error is not None
    assert error.reason is DeliveryFailure.TIMEOUT
    assert ended == pytest.approx(32.0)


async def test_provisional_moves_non_invite_to_t2_and_final_stops_it() -> None:
    outcome: list[DeliveryError | None] = []
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            leg = disp.legs[0]
            disp.set_receiver(lambda *args: None)
            start = peer.start = anyio.current_time()
            await disp.deliver(
                request("REGISTER", f"sip:example.com@127.0.0.1:{peer.port}"),
                callback=outcome.append,
            )
            await peer.wait_for(3)  # 0, 0.5, 1.5
            await anyio.sleep_until(start + 2.0)
            sent = peer.arrivals[0].message
            assert isinstance(sent, Request)
            await peer.send(make_response(sent, 100), leg.address)
            # Timer E keeps its 2 s value once more (3.5), then T2: 7.5, 11.5, 15.5
            await anyio.sleep_until(start + 16.0)
            await peer.send(make_response(sent, 200, to_tag=new_tag()), leg.address)
            await anyio.sleep_until(start + 40.0)
            assert disp.statistics().deliveries_pending == 0
        tg.cancel_scope.cancel()
    assert peer.times() == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert outcome == [None]


async def test_provisional_stops_invite_retransmission() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            disp.set_receiver(lambda *args: None)
            start = peer.start = anyio.current_time()
            await disp.deliver(request("INVITE", f"sip:bob@127.0.0.1:{peer.port}"))
            await peer.wait_for(2)
            invite = peer.arrivals[0].message
            assert isinstance(invite, Request)
            await peer.send(make_response(invite, 180, to_tag="x"), disp.legs[0].address)
            await anyio.sleep_until(start + 40)
        tg.cancel_scope.cancel()
    assert peer.times() == [0, 0.5]


async def test_cancel_delivery_stops_at_once() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            start = peer.start = anyio.current_time()
            called: list[object] = []
            tid = await disp.deliver(
                request("INVITE", f"sip:bob@127.0.0.1:{peer.port}"), callback=called.append
            )
            await anyio.sleep_until(start + 2.0)
            assert disp.cancel_delivery(tid)
            assert disp.statistics().deliveries_pending == 0
            assert not disp.cancel_delivery(tid)
            await anyio.sleep_until(start + 40)
        tg.cancel_scope.cancel()
    assert peer.times() == [0, 0.5, 1.5]
    assert called == []


async def test_no_retransmission_when_disabled() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"], do_retransmits=False) as disp:
            start = peer.start = anyio.current_time()
            await disp.deliver(request("INVITE", f"sip:bob@127.0.0.1:{peer.port}"))
            await anyio.sleep_until(start + 40)
        tg.cancel_scope.cancel()
    assert peer.times() == [0]


class _Answerer:
    """A receiver that answers every request once with ``status``."""

    def __init__(self, disp: Dispatcher, status: int) -> None:
        self.disp = disp
        self.status = status
        self.requests: list[Request] = []

    async def receive(self, packet: Request | Response, leg: object, addr: object) -> None:
        if isinstance(packet, Request):
            self.requests.append(packet)
            if packet.method != "ACK":
                await self.disp.deliver(make_response(packet, self.status, to_tag="srv"))


@pytest.mark.parametrize("status", [486, 200])
async def test_invite_final_response_retransmits_until_ack(status: int) -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            uas = _Answerer(disp, status)
            disp.set_receiver(uas)
            start = peer.start = anyio.current_time()
            invite = raw_request("INVITE", peer.address, branch="z9hG4bKinv1")
            await peer.send(invite, disp.legs[0].address)
            await peer.wait_for(4)  # 0, 0.5, 1.5, 3.5
            await anyio.sleep_until(start + 5.0)
            if status >= 300:
                ack = invite.replace(b"INVITE", b"ACK").replace(b"1 ACK", b"1 ACK")
                ack = ack.replace(
                    b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=srv"
                )
            else:  # the ACK for a 2xx is a new transaction: new branch
                ack = raw_request("ACK", peer.address, branch="z9hG4bKack2")
            await peer.send(ack, disp.legs[0].address)
            await anyio.sleep_until(start + 40)
            assert disp.statistics().deliveries_pending == 0
        tg.cancel_scope.cancel()
    assert peer.times() == [0, 0.5, 1.5, 3.5]
    assert all(isinstance(a.message, Response) for a in peer.arrivals)
    methods = [r.method for r in uas.requests]
    # The ACK for a non-2xx belongs to the INVITE transaction: absorbed.
    assert methods == (["INVITE"] if status >= 300 else ["INVITE", "ACK"])


async def test_unacknowledged_final_response_times_out_on_timer_h() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            failures: list[DeliveryError | None] = []

            async def receive(packet: Request | Response, leg: object, addr: object) -> None:
                assert isinstance(packet, Request)
                await disp.deliver(make_response(packet, 404), callback=failures.append)

            disp.set_receiver(receive)
            start = peer.start = anyio.current_time()
            await peer.send(
                raw_request("INVITE", peer.address, branch="z9hG4bKh"), disp.legs[0].address
            )
            await anyio.sleep_until(start + 40)
        tg.cancel_scope.cancel()
    assert peer.times() == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert len(failures) == 1
    assert failures[0] is not None
    assert failures[0].reason is DeliveryFailure.TIMEOUT


async def test_retransmitted_request_is_answered_from_the_cache() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            uas = _Answerer(disp, 200)
            disp.set_receiver(uas)
            options = raw_request("OPTIONS", peer.address, branch="z9hG4bKopt")
            for _ in range(3):
                await peer.send(options, disp.legs[0].address)
                await anyio.sleep(1.0)
            stats = disp.statistics()
            # After 64*T1 the transaction is forgotten: a late copy is new again.
            await anyio.sleep(40)
            assert disp.statistics().cache_size == 0
            await peer.send(options, disp.legs[0].address)
            await peer.wait_for(4)
        tg.cancel_scope.cancel()
    assert len(uas.requests) == 2
    assert stats.redeliveries == 2
    assert stats.absorbed == 2
    responses = [a.message for a in peer.arrivals]
    assert all(isinstance(r, Response) and r.status == 200 for r in responses)


async def test_retransmission_before_any_response_is_absorbed() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[Request | Response] = []
            disp.set_receiver(lambda packet, leg, addr: seen.append(packet))
            invite = raw_request("INVITE", peer.address, branch="z9hG4bKslow")
            await peer.send(invite, disp.legs[0].address)
            await anyio.sleep(0.5)
            await peer.send(invite, disp.legs[0].address)
            await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    assert len(seen) == 1
    assert peer.arrivals == []


async def test_received_and_rport_are_filled_in() -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            seen: list[Request | Response] = []
            disp.set_receiver(lambda packet, leg, addr: seen.append(packet))
            peer_port = peer.port
            data = raw_request("OPTIONS", ("192.0.2.1", 5060), branch="z9hG4bKnat")
            await peer.send(data, disp.legs[0].address)
            await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    via = seen[0].top_via
    assert via.received == "127.0.0.1"
    assert via.rport == peer_port
    assert parse_message(bytes(seen[0])).top_via.rport == peer_port


@pytest.mark.parametrize(
    ("via_of", "expect"),
    [
        # (the Via the client writes, given its real address) -> what the receiver sees
        (lambda h, p: f"SIP/2.0/UDP {h}:{p};branch=z9hG4bKv", lambda h, p: None),
        (lambda h, p: f"SIP/2.0/UDP {h}:{p};branch=z9hG4bKv;rport", lambda h, p: (h, p)),
        (lambda h, p: f"SIP/2.0/UDP {h}:{p};RPort;branch=z9hG4bKv", lambda h, p: (h, p)),
        (lambda h, p: f"SIP/2.0/UDP 192.0.2.1:{p};branch=z9hG4bKv", lambda h, p: (h, None)),
        (lambda h, p: "SIP/2.0/UDP client.example.com;branch=z9hG4bKv", lambda h, p: (h, None)),
        (lambda h, p: f"SIP/2.0/UDP  {h} : {p} ;branch=z9hG4bKv", lambda h, p: None),
    ],
    ids=["same-host", "rport", "rport-any-case", "other-host", "name", "odd-spacing"],
)
async def test_received_and_rport_only_where_needed(via_of: Any, expect: Any) -> None:
    # RFC 3261 18.2.1: received only when the sent-by host differs from the
    # source; RFC 3581: rport filled in when asked. A Via that needs neither
    # stays byte for byte as sent.
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"], response_cache=False) as disp:
            seen: list[Request | Response] = []
            arrived = anyio.Event()

            def receive(packet: Request | Response, leg: object, addr: object) -> None:
                seen.append(packet)
                arrived.set()

            disp.set_receiver(receive)
            port = peer.port
            sent_via = via_of("127.0.0.1", port)
            data = raw_request("OPTIONS", ("127.0.0.1", port), branch="z9hG4bKv")
            data = data.replace(
                f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKv;rport".encode(),
                sent_via.encode(),
            )
            await peer.send(data, disp.legs[0].address)
            with anyio.fail_after(5):
                await arrived.wait()
        tg.cancel_scope.cancel()
    wanted = expect("127.0.0.1", port)
    if wanted is None:
        assert bytes(seen[0]) == data
        return
    via = parse_message(bytes(seen[0])).top_via
    received, rport = wanted
    assert via.received == received
    assert via.rport == rport
