"""CPU per packet of the stateless proxy's path, without SIPp and without waiting.

Run: ``python benchmarks/bench_proxy_path.py [--backend trio|asyncio]``.
Feeds an INVITE and its 180 response, as bytes, straight into a running
Dispatcher (the call its UDP leg makes for each datagram) with a
:class:`StatelessProxy` as receiver, and reports microseconds per packet:
parsing, the Dispatcher's checks, the proxy's routing, Via handling,
serialising and the ``sendto`` (to a socket nobody reads). What is missing
from a real run is only the event loop's receive; see ``run.py`` for that.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable

import anyio

from trio_sip.dispatcher import Dispatcher
from trio_sip.server import StatelessProxy
from trio_sip.transport import Leg
from trio_sip.transport.leg import Address

CLIENT = ("127.0.0.1", 5061)


def _invite(n: int) -> bytes:
    return (
        f"INVITE sip:service@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
        f"To: sut <sip:service@127.0.0.1:5070>\r\n"
        f"Call-ID: {n}-1@127.0.0.1\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: sip:sipp@127.0.0.1:5061\r\n"
        f"Max-Forwards: 70\r\n"
        f"Subject: Performance Test\r\n"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: 129\r\n\r\n"
        "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
        "c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def _ringing(n: int, proxy_via: str) -> bytes:
    return (
        f"SIP/2.0 180 Ringing\r\n"
        f"Via: {proxy_via}\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
        f"To: sut <sip:service@127.0.0.1:5070>;tag={n}SIPpTag011\r\n"
        f"Call-ID: {n}-1@127.0.0.1\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: <sip:127.0.0.1:5070;transport=UDP>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


#: Packets fed between two turns of the event loop.
BATCH = 500


async def _timed_batch(
    on_packet: Callable[[bytes, Leg, Address], None],
    batch: list[bytes],
    leg: Leg,
    source: Address,
    forwarded: Callable[[], int],
) -> float | None:
    """CPU seconds to feed ``batch``; None when some of it left the inline path.

    Once a second the proxy's targets cache expires: that request resolves
    its route on the slow path, in its source's handler task, and the rest
    of the batch queues behind it (in order) instead of being forwarded at
    once. Such a batch measures queueing, not forwarding: it is not counted.
    """
    before = forwarded()
    start = time.process_time()
    for data in batch:
        on_packet(data, leg, source)
    spent = time.process_time() - start
    inline = forwarded() - before == len(batch)
    with anyio.fail_after(10):
        # The queued ones, if any (statistics have no event to wait on).
        while forwarded() - before < len(batch):  # noqa: ASYNC110
            await anyio.sleep(0.001)
    return spent if inline else None


async def measure(count: int) -> tuple[float, float]:
    """Microseconds per request and per response through the proxy."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        hop = f"127.0.0.1:{sink.getsockname()[1]}"
        async with Dispatcher(
            ["udp:127.0.0.1:0"],
            response_cache=False,
            do_retransmits=False,
            domain2proxy={"*": f"sip:{hop}"},
        ) as disp:
            proxy = StatelessProxy(disp)
            disp.set_receiver(proxy.receive_nowait)
            leg = disp.legs[0]
            on_packet = disp._on_packet  # what the leg's receive loop calls
            invites = [_invite(n) for n in range(count)]
            proxy_via = f"SIP/2.0/UDP 127.0.0.1:{leg.port};branch=z9hG4bKx;rport"
            responses = [_ringing(n, proxy_via) for n in range(count)]
            spent = [0.0, 0.0]
            kinds = (
                (invites, CLIENT, lambda: proxy.statistics().requests_forwarded),
                (responses, ("127.0.0.1", 5070), lambda: proxy.statistics().responses_forwarded),
            )
            for first in range(0, count, BATCH):
                for kind, (packets, source, forwarded) in enumerate(kinds):
                    batch = packets[first : first + BATCH]
                    while (
                        took := await _timed_batch(on_packet, batch, leg, source, forwarded)
                    ) is None:
                        pass  # fed again: the cache is warm now
                    spent[kind] += took
    return spent[0] / count * 1e6, spent[1] / count * 1e6


def main() -> None:
    """Print microseconds per packet on the chosen backend."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    request, response = anyio.run(measure, args.count, backend=args.backend)
    print(f"request  {request:6.1f} us per packet")
    print(f"response {response:6.1f} us per packet")


if __name__ == "__main__":
    main()
