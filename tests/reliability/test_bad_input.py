"""Garbage in, service on: a Dispatcher under mutated and oversized input.

A seeded mutator (bounded: a fixed number of messages) corrupts a valid
request in the ways a broken or hostile peer would (flipped bytes, cut
lines, repeated parts, junk inserted) and sends the results over UDP and
TCP, while a well-behaved client keeps asking and must be answered every
time. Oversized input (10,000 Via headers, a million-byte header line, a
Content-Length beyond the stream) is refused, cheaply.
"""

from __future__ import annotations

import random
import time

import anyio
import anyio.abc
import pytest

from dispatcher._peer import udp_peer
from server._support import raw
from trio_sip.dispatcher import Dispatcher
from trio_sip.errors import DeliveryError, ParseError
from trio_sip.message import Request, Response, make_response
from trio_sip.message.framing import StreamFramer
from trio_sip.transport.leg import Leg

pytestmark = pytest.mark.anyio

GARBAGE = 400  # mutated messages per transport
GOOD_EVERY = 20  # a valid request after this many bad ones


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out)) if out else 0
        if kind == 0:  # flip a byte
            if out:
                out[at] = rng.randrange(256)
        elif kind == 1:  # cut the message short
            del out[at:]
        elif kind == 2:  # repeat a slice
            end = min(len(out), at + rng.randint(1, 200))
            out[at:at] = out[at:end] * rng.randint(1, 20)
        elif kind == 3:  # junk, line ends and colons inserted
            junk = bytes(
                rng.choice(b'\r\n:;,<>"\\ \t\x00\xff@=') for _ in range(rng.randint(1, 30))
            )
            out[at:at] = junk
        elif kind == 4:  # drop a line
            start = out.rfind(b"\r\n", 0, at)
            stop = out.find(b"\r\n", at)
            if start >= 0 and stop > start:
                del out[start:stop]
        else:  # a huge Content-Length or a negative one
            out = out.replace(
                b"Content-Length: 0",
                rng.choice(
                    [b"Content-Length: 99999999", b"Content-Length: -5", b"Content-Length: x"]
                ),
            )
    return bytes(out)


def _answering(disp: Dispatcher) -> object:
    async def receive(packet: Request | Response, leg: Leg, addr: tuple[str, int]) -> None:
        if not isinstance(packet, Request) or packet.method == "ACK":
            return
        try:
            await disp.deliver(make_response(packet, 200, to_tag="t"), leg=leg, dst_addr=addr)
        except ParseError:
            # Headers are parsed when first read: one the Dispatcher did not
            # need (To, CSeq ...) can still be broken. A receiver drops it.
            return
        except DeliveryError:
            return  # the garbage's sender hung up before the answer

    return receive


async def test_udp_fuzz_while_a_good_client_is_answered() -> None:
    rng = random.Random(20261130)
    async with anyio.create_task_group() as tg, udp_peer(tg) as attacker, udp_peer(tg) as good:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            disp.set_receiver(_answering(disp))
            here = disp.legs[0].address
            answered = 0
            for i in range(GARBAGE):
                base = raw("OPTIONS", "sip:x@example.com", attacker.address, branch=f"z9hG4bKa{i}")
                await attacker.send(_mutate(rng, base), here)
                if i % GOOD_EVERY == GOOD_EVERY - 1:
                    request = raw(
                        "OPTIONS", "sip:x@example.com", good.address, branch=f"z9hG4bKg{i}"
                    )
                    await good.send(request, here)
                    answered += 1
                    arrivals = await good.wait_for(answered)
                    assert isinstance(arrivals[-1].message, Response)
                    assert arrivals[-1].message.status == 200
            stats = disp.statistics()
        tg.cancel_scope.cancel()
    assert answered == GARBAGE // GOOD_EVERY
    assert stats.dropped > 0  # the garbage was noticed, not handed up
    assert stats.receiver_errors == 0


async def _tcp_options(port: int, n: int) -> Response:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        local = stream.extra(anyio.abc.SocketAttribute.local_address)
        request = raw(
            "OPTIONS", "sip:x@example.com", (str(local[0]), int(local[1])), branch=f"z9hG4bKt{n}"
        )
        await stream.send(request.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP", 1))
        framer = StreamFramer()
        with anyio.fail_after(10):
            while True:
                for event in framer.feed(await stream.receive()):
                    assert isinstance(event, Response)
                    return event


async def test_tcp_fuzz_while_a_good_client_is_answered() -> None:
    rng = random.Random(9)
    async with Dispatcher(["tcp:127.0.0.1:0"]) as disp:
        disp.set_receiver(_answering(disp))
        port = disp.legs[0].port
        good = 0
        for i in range(GARBAGE // 4):
            # A connection carrying a few mutated messages, then gone.
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                for j in range(4):
                    base = raw(
                        "OPTIONS", "sip:x@example.com", ("127.0.0.1", 9), branch=f"z9hG4bKb{i}{j}"
                    )
                    try:
                        await stream.send(_mutate(rng, base.replace(b"UDP", b"TCP", 1)))
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        break  # the Dispatcher hung up on garbage: fine
            if i % (GOOD_EVERY // 4) == 0:
                response = await _tcp_options(port, i)
                assert response.status == 200
                good += 1
        assert disp.statistics().receiver_errors == 0
    assert good == GARBAGE // GOOD_EVERY


@pytest.mark.parametrize(
    "what",
    ["10000 Via headers", "a million-byte header line", "Content-Length beyond the datagram"],
)
async def test_oversized_udp_input_is_refused_cheaply(what: str) -> None:
    async with anyio.create_task_group() as tg, udp_peer(tg) as peer:
        async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
            handed_up: list[Request | Response] = []
            arrived = anyio.Event()

            def receive(packet: Request | Response, leg: Leg, addr: tuple[str, int]) -> None:
                handed_up.append(packet)
                arrived.set()

            disp.set_receiver(receive)
            here = disp.legs[0].address
            base = raw("INVITE", "sip:x@example.com", peer.address, branch="z9hG4bKbig")
            head, _, _ = base.partition(b"\r\n\r\n")
            if what == "10000 Via headers":
                extra = b"".join(
                    b"\r\nVia: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bK%d" % (i % 250, i)
                    for i in range(10000)
                )
                # A datagram holds 65,535 bytes: these are as many as fit.
                data = (head + extra)[:65000] + b"\r\n\r\n"
            elif what == "a million-byte header line":
                data = head + b"\r\nSubject: " + b"x" * 60000 + b"\r\n\r\n"
            else:
                data = base.replace(b"Content-Length: 0", b"Content-Length: 5000") + b"v=0\r\n"
            started = time.perf_counter()
            await peer.send(data, here)
            # A valid request right after is still answered: the bad one
            # did not wedge the receive loop.
            probe = raw("OPTIONS", "sip:x@example.com", peer.address, branch="z9hG4bKok")
            await peer.send(probe, here)
            with anyio.fail_after(5):
                await arrived.wait()
            elapsed = time.perf_counter() - started
            stats = disp.statistics()
        tg.cancel_scope.cancel()
    assert [p.method for p in handed_up if isinstance(p, Request)] == ["OPTIONS"]
    assert stats.dropped == 1
    assert elapsed < 2.0
    # Answered with an error status when it got far enough, else dropped silently.
    for arrival in peer.arrivals:
        assert isinstance(arrival.message, Response)
        assert arrival.message.status in (400, 413), arrival.message.status
