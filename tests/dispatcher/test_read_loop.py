"""ReadLoop: drain a descriptor on each readiness, on Trio and asyncio."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest

from trio_sip.transport import UDPLeg
from trio_sip.transport.leg import Address, Leg
from trio_sip.transport.readable import ReadLoop

pytestmark = pytest.mark.anyio

BOUND = 10.0


def _pair() -> tuple[socket.socket, socket.socket]:
    """A bound non-blocking receiver and a sender aimed at it."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    return receiver, sender


async def test_drain_runs_per_readiness_until_it_says_closed() -> None:
    receiver, sender = _pair()
    got: list[bytes] = []

    def drain() -> bool:
        while True:
            try:
                got.append(receiver.recv(100))
            except BlockingIOError:
                return got[-1:] != [b"last"]

    try:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ReadLoop(receiver.fileno(), drain).serve)
                for data in (b"one", b"two"):
                    sender.send(data)
                    await anyio.sleep(0.05)
                sender.send(b"last")
        # serve() returned by itself once drain() said there is no more.
        assert got == [b"one", b"two", b"last"]
    finally:
        receiver.close()
        sender.close()


async def test_stop_ends_serve_and_the_descriptor_may_close() -> None:
    receiver, sender = _pair()
    reader = ReadLoop(receiver.fileno(), lambda: True)
    try:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader.serve)
                await anyio.sleep(0.05)
                reader.stop()
                receiver.close()
        # Stopped before it ran: serve() returns at once.
        with anyio.fail_after(BOUND):
            await reader.serve()
    finally:
        receiver.close()
        sender.close()


async def test_what_drain_raises_comes_out_of_serve() -> None:
    receiver, sender = _pair()

    def drain() -> bool:
        receiver.recv(100)
        raise ValueError("drain broke")

    try:
        sender.send(b"x")
        with anyio.fail_after(BOUND), pytest.raises(ValueError, match="drain broke"):
            await ReadLoop(receiver.fileno(), drain).serve()
    finally:
        receiver.close()
        sender.close()


async def test_a_udp_leg_closed_from_another_task_stops_serving() -> None:
    leg = UDPLeg("127.0.0.1", 0)
    await leg.bind()
    got: list[bytes] = []
    arrived = anyio.Event()

    def handler(data: bytes | object, _leg: Leg, _src: Address) -> None:
        assert isinstance(data, bytes)
        got.append(data)
        arrived.set()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(leg.serve, handler)
                sender.sendto(b"ping", leg.address)
                await arrived.wait()
                leg.close()
        assert got == [b"ping"]
        assert leg.raw_socket is None


async def test_a_handler_error_ends_the_udp_leg_s_serve() -> None:
    # Not swallowed on either backend: the Dispatcher's task sees it.
    leg = UDPLeg("127.0.0.1", 0)
    await leg.bind()

    def handler(_data: object, _leg: Leg, _src: Address) -> None:
        raise KeyError("handler broke")

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"ping", leg.address)
            with anyio.fail_after(BOUND), pytest.raises(KeyError, match="handler broke"):
                await leg.serve(handler)
    finally:
        await leg.aclose()


def test_under_plain_asyncio_the_handler_may_use_anyio() -> None:
    # A program started with asyncio.run (not anyio.run): the leg's handler
    # (the Dispatcher, the Endpoint's timers) uses anyio, which must know
    # its backend there.
    seen: list[float] = []

    async def main() -> None:
        leg = UDPLeg("127.0.0.1", 0)
        await leg.bind()
        arrived = asyncio.Event()

        def handler(_data: object, _leg: Leg, _src: Address) -> None:
            seen.append(anyio.current_time())
            arrived.set()

        serving = asyncio.ensure_future(leg.serve(handler))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"ping", leg.address)
            await asyncio.wait_for(arrived.wait(), BOUND)
        leg.close()
        await asyncio.wait_for(serving, BOUND)

    asyncio.run(main())
    assert len(seen) == 1
