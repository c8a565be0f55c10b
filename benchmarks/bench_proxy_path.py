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

import anyio

from trio_sip.dispatcher import Dispatcher
from trio_sip.server import StatelessProxy

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
            # The first request learns its targets on the slow path.
            on_packet(_invite(0), leg, CLIENT)
            await anyio.sleep(0.05)
            invites = [_invite(n) for n in range(count)]
            proxy_via = f"SIP/2.0/UDP 127.0.0.1:{leg.port};branch=z9hG4bKx;rport"
            responses = [_ringing(n, proxy_via) for n in range(count)]
            spent = [0.0, 0.0]
            # Batches, with the loop let run in between: the proxy's targets
            # cache lives one second and is refilled on the slow path.
            for first in range(0, count, 500):
                for kind, batch, source in (
                    (0, invites[first : first + 500], CLIENT),
                    (1, responses[first : first + 500], ("127.0.0.1", 5070)),
                ):
                    start = time.process_time()
                    for data in batch:
                        on_packet(data, leg, source)
                    spent[kind] += time.process_time() - start
                await anyio.sleep(0.001)
            await anyio.sleep(0.2)  # the few that took the slow path
            sent = proxy.statistics()
            assert sent.requests_forwarded == count + 1, sent
            assert sent.responses_forwarded == count, sent
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
