"""A trio-sip stateless proxy as a system under test, in a process of its own.

Run by ``benchmarks/run.py`` (one process per system, so that each gets its
own core time); usable by hand too::

    python benchmarks/sut_proxy.py --backend trio --listen 127.0.0.1:5080 \\
        --next-hop 127.0.0.1:5070 [--lifetime 600] [--profile proxy.prof]

Every request goes to ``--next-hop`` (the ``*`` entry of ``domain2proxy``),
responses back along their Via headers, on a Dispatcher without response
cache or retransmission: what a stateless proxy is. Prints ``READY udp
<addr> <port>`` once the socket is bound, and stops on SIGTERM or SIGINT
(writing the profile, when asked) or after ``--lifetime`` seconds, so that a
harness that dies cannot leak it.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys
import time

import anyio

from trio_sip.dispatcher import Dispatcher
from trio_sip.server import StatelessProxy


async def serve(listen: str, next_hop: str, lifetime: float) -> None:
    """Forward until SIGTERM/SIGINT or ``lifetime`` seconds have passed."""
    async with Dispatcher(
        [f"udp:{listen}"],
        response_cache=False,
        do_retransmits=False,
        domain2proxy={"*": f"sip:{next_hop}"},
    ) as disp:
        proxy = StatelessProxy(disp)
        disp.set_receiver(proxy.receive_nowait)
        leg = disp.legs[0]
        cpu_start = time.process_time()
        with (
            anyio.move_on_after(lifetime),
            anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals,
        ):
            print(f"READY udp {leg.host} {leg.port}", flush=True)
            async for _ in signals:
                break
        stats = proxy.statistics()
        packets = disp.statistics().packets_in
        cpu = time.process_time() - cpu_start
        print(
            f"forwarded {stats.requests_forwarded} requests, "
            f"{stats.responses_forwarded} responses; dropped {stats.dropped}; "
            f"cpu {cpu:.2f} s for {packets} packets: "
            f"{cpu / max(1, packets) * 1e6:.0f} us per packet",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the proxy on the chosen backend."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    parser.add_argument("--listen", required=True, help="host:port to listen on (udp)")
    parser.add_argument("--next-hop", required=True, help="host:port every request goes to")
    parser.add_argument("--lifetime", type=float, default=600.0, help="seconds before exiting")
    parser.add_argument("--profile", help="write cProfile statistics to this file on exit")
    args = parser.parse_args(argv)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        anyio.run(serve, args.listen, args.next_hop, args.lifetime, backend=args.backend)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    sys.exit(0)


if __name__ == "__main__":
    main()
