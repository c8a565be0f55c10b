"""ReceiveChain and the small handlers: Blocker, Redirect, Dropper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from dispatcher._peer import UDPPeer, udp_peer
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response
from trio_sip.server import (
    AnsweredInvites,
    Binding,
    Blocker,
    Dropper,
    Handler,
    MemoryStore,
    ReceiveChain,
    Redirect,
    Registrar,
)
from trio_sip.transport.leg import Address, Leg

from ._support import exchange, final, raw

pytestmark = pytest.mark.anyio


class Recorder:
    """The last link: takes everything and remembers it."""

    def __init__(self) -> None:
        self.seen: list[Request | Response] = []
        self.got = anyio.Event()

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        self.seen.append(packet)
        self.got.set()
        return True


class Refuser:
    def __init__(self) -> None:
        self.offered = 0

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        self.offered += 1
        return False


@asynccontextmanager
async def running(
    *handlers: Handler, cache: bool = True
) -> AsyncIterator[tuple[UDPPeer, Dispatcher, tuple[str, int]]]:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"], response_cache=cache) as disp:
            disp.set_receiver(ReceiveChain(list(handlers)))
            yield peer, disp, disp.legs[0].address
        tg.cancel_scope.cancel()


def request(peer: UDPPeer, method: str, n: int = 1, *headers: str) -> bytes:
    return raw(
        method, "sip:bob@example.com", peer.address, branch=f"z9hG4bKc{n}", cseq=n, headers=headers
    )


async def test_chain_stops_at_the_first_handler_that_takes_the_packet() -> None:
    refuser, recorder, never = Refuser(), Recorder(), Recorder()
    async with running(refuser, recorder, never) as (peer, _disp, dst):
        await peer.send(request(peer, "OPTIONS"), dst)
        with anyio.fail_after(5):
            await recorder.got.wait()
    assert refuser.offered == 1
    assert len(recorder.seen) == 1
    assert never.seen == []


async def test_chain_with_methods_passes_other_methods_on() -> None:
    inner = Recorder()
    chain = ReceiveChain([inner], methods=["REGISTER"])
    after = Recorder()
    async with running(chain, after) as (peer, _disp, dst):
        await peer.send(request(peer, "OPTIONS"), dst)
        with anyio.fail_after(5):
            await after.got.wait()
    assert inner.seen == []
    assert chain.unhandled == 0


async def test_blocker_answers_405_with_allow_and_absorbs_the_ack() -> None:
    after = Recorder()
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        # No response cache: the Blocker itself must keep the ACK from going on.
        async with Dispatcher(["udp:127.0.0.1:0"], response_cache=False, do_retransmits=False) as d:
            d.set_receiver(ReceiveChain([Blocker(d, {"INVITE": 405, "MESSAGE": 403}), after]))
            dst = d.legs[0].address
            data = request(peer, "INVITE")
            response = final(await exchange(peer, dst, data))
            assert response.status == 405
            # Allow lists the methods valid here (21.4.6): not the blocked ones.
            assert response.headers.get("Allow") == "ACK, CANCEL, BYE, OPTIONS, REGISTER"
            assert response.to.tag
            ack = data.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK")
            await peer.send(ack, dst)
            assert final(await exchange(peer, dst, request(peer, "MESSAGE", 2))).status == 403
            await peer.send(request(peer, "OPTIONS", 3), dst)
            with anyio.fail_after(5):
                await after.got.wait()
        tg.cancel_scope.cancel()
    assert [p.method for p in after.seen if isinstance(p, Request)] == ["OPTIONS"]


async def test_redirect_answers_302_with_the_bindings_and_passes_unknown_users() -> None:
    after = Recorder()
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            store = MemoryStore()
            registrar = Registrar(disp, store)
            binding = Binding("sip:bob@example.com", "sip:bob@192.0.2.5:5070", 2e9, "c", 1, q=0.7)
            await store.replace(binding.aor, [binding])
            disp.set_receiver(ReceiveChain([Redirect(disp, registrar), after]))
            dst = disp.legs[0].address
            response = final(await exchange(peer, dst, request(peer, "INVITE")))
            assert response.status == 302
            (contact,) = response.contacts
            assert str(contact.uri) == "sip:bob@192.0.2.5:5070"
            assert contact.params["q"] == "0.7"
            unknown = raw("INVITE", "sip:carol@example.com", peer.address, branch="z9hG4bKu")
            await peer.send(unknown, dst)
            with anyio.fail_after(5):
                await after.got.wait()
        tg.cancel_scope.cancel()
    assert len(after.seen) == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_dropper_token_bucket_per_source() -> None:
    clock = Clock()
    dropper = Dropper(rate=2.0, burst=3, clock=clock)
    msg = Request("OPTIONS", "sip:x@example.com")
    leg = None
    a, b = ("192.0.2.1", 5060), ("192.0.2.2", 5060)
    results = [await dropper.receive(msg, leg, a) for _ in range(5)]  # type: ignore[arg-type]
    assert results == [False, False, False, True, True]
    assert await dropper.receive(msg, leg, b) is False  # type: ignore[arg-type]
    clock.now += 0.5  # one token back at 2 per second
    assert await dropper.receive(msg, leg, a) is False  # type: ignore[arg-type]
    assert await dropper.receive(msg, leg, a) is True  # type: ignore[arg-type]
    stats = dropper.statistics()
    assert (stats.passed, stats.dropped_by_rate, stats.tracked_sources) == (5, 3, 2)


async def test_dropper_memory_is_bounded_and_patterns_drop() -> None:
    dropper = Dropper(
        rate=1.0, burst=1, max_sources=3, patterns={"User-Agent": [r"friendly-scanner"]}
    )
    scanner = Request("OPTIONS", "sip:x@example.com", [("User-Agent", "friendly-scanner 1.0")])
    fine = Request("OPTIONS", "sip:x@example.com", [("User-Agent", "softphone")])
    for i in range(10):
        await dropper.receive(fine, None, (f"192.0.2.{i}", 5060))  # type: ignore[arg-type]
    assert dropper.statistics().tracked_sources == 3
    assert await dropper.receive(scanner, None, ("198.51.100.1", 5060)) is True  # type: ignore[arg-type]
    assert dropper.statistics().dropped_by_pattern == 1


def test_answered_invites_expire_and_stay_bounded() -> None:
    clock = Clock()
    answered = AnsweredInvites(lifetime=32, max_entries=2, clock=clock)
    invites = [
        Request(
            "INVITE", "sip:b@x", [("Via", f"SIP/2.0/UDP h;branch=z9hG4bK{i}"), ("Call-ID", "c")]
        )
        for i in range(3)
    ]
    acks = [
        Request("ACK", "sip:b@x", [("Via", f"SIP/2.0/UDP h;branch=z9hG4bK{i}"), ("Call-ID", "c")])
        for i in range(3)
    ]
    for inv in invites:
        answered.add(inv)
    assert len(answered) == 2
    assert not answered.absorbs(acks[0])
    assert answered.absorbs(acks[2])
    clock.now += 33
    assert not answered.absorbs(acks[2])
    assert len(answered) == 0
