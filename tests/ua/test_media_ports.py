"""RTP ports of a UserAgent's calls: from its range, given back when each call ends."""

from __future__ import annotations

import socket

import anyio
import pytest

from trio_sip.media import PortRange
from trio_sip.ua import UserAgent

pytestmark = pytest.mark.anyio

LEG = ["udp:127.0.0.1:0"]


def one_pair() -> PortRange:
    """A range of one even/odd port pair, free on loopback just now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            low = probe.getsockname()[1] & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", low))
                b.bind(("127.0.0.1", low + 1))
        except OSError:
            continue
        return PortRange(low, low + 1)
    raise AssertionError("no free port pair found")


async def test_calls_take_their_ports_from_the_range_and_give_them_back() -> None:
    # Each UA has one port pair: a second call works only if the first one's
    # sockets were closed when it ended (else the callee answers 503).
    ours, theirs = one_pair(), one_pair()
    async with (
        UserAgent("sip:alice@127.0.0.1", listen=LEG, rtp_ports=ours) as alice,
        UserAgent("sip:bob@127.0.0.1", listen=LEG, rtp_ports=theirs) as bob,
        anyio.create_task_group() as tg,
    ):
        callee_ports: list[int] = []

        async def callee() -> None:
            async for call in bob.incoming_calls():
                await call.answer()
                callee_ports.append(call.media.local_port)
                await call.wait_ended()

        tg.start_soon(callee)
        with anyio.fail_after(15):
            for _ in range(2):
                async with alice.invite(f"sip:bob@{bob.dispatcher.legs[0].sent_by()}") as a:
                    assert (await a.wait_answered()).status == 200
                    assert a.media.local_port == ours.low
                # Let bob's side of the call close its session.
                await anyio.wait_all_tasks_blocked()
        assert callee_ports == [theirs.low, theirs.low]
        tg.cancel_scope.cancel()
    # And once the UAs are gone, every port is free.
    for port in (ours.low, ours.high, theirs.low, theirs.high):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", port))
