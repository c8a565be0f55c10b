"""trio-sip against Net::SIP and Kamailio, measured in one run on one machine.

Run from the repository root::

    python benchmarks/run.py                     # everything, a few minutes
    python benchmarks/run.py --systems trio,kamailio --seconds 4
    python benchmarks/run.py --only parser
    python benchmarks/run.py --smoke             # tiny sizes: checks it still works

Proxy rows: SIPp's built-in ``uac`` calls SIPp's ``uas`` through each
stateless proxy (``-rsa``), on a ladder of call rates. Each step makes a
fixed number of calls (``--seconds`` worth); a step is *clean* when every
call succeeds, none fails and the run ends within 1.25 times its nominal
time. A system's figure is the highest clean rate; climbing stops after
``--patience`` unclean steps in a row. Every system runs in its own process
(ours: ``benchmarks/sut_proxy.py``), the one under test alone with SIPp.

Parser row: parse an INVITE, put a Via on top and serialise it, in messages
per second, against Net::SIP::Packet doing the same (a Perl script run here).

SIPp, the system under test and the SIPp peer share the machine's cores:
compare systems of one run, as ratios, not figures of different runs.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio

HERE: Final = Path(__file__).resolve().parent
# The interop harness (SIPp, Net::SIP and Kamailio runners) lives with the tests.
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_parser import INVITE  # noqa: E402

from interop.peers import (  # noqa: E402
    Address,
    KamailioProxy,
    NetSipProxy,
    PeerError,
    PeerMissing,
    SippServer,
    _PeerContext,
    _printed_ready,
    _WorkDir,
    find_program,
    free_port,
    run_sipp,
)
from trio_sip.message import parse_message  # noqa: E402

#: Call rates tried, lowest first.
LADDER: Final = (100, 150, 200, 300, 400, 500, 700, 1000, 1200, 1400, 1700, 2000, 2500, 3000)
SMOKE_LADDER: Final = (25,)
#: A step is clean when it ends within this factor of its nominal time.
SLACK: Final = 1.25
SYSTEMS: Final = ("trio", "asyncio", "netsip", "kamailio", "direct")
LABELS: Final = {
    "trio": "trio-sip proxy (trio)",
    "asyncio": "trio-sip proxy (asyncio)",
    "netsip": "Net::SIP stateless proxy",
    "kamailio": "Kamailio, 1 worker",
    "direct": "SIPp uac -> uas, no proxy",
}

# Net::SIP::Packet's side of the parser row: the same INVITE, parsed, a Via
# prepended (what a proxy does), serialised, for a given number of seconds.
NETSIP_PARSER: Final = r"""
use strict; use warnings;
use Net::SIP (); use Time::HiRes qw(time);
my $seconds = shift;
my $data = do { local $/; <STDIN> };
my ($n, $t0) = (0, time);
my $end = $t0 + $seconds;
while (1) {
    for (1 .. 50) {
        my $p = Net::SIP::Packet->new($data);
        $p->insert_header(via => 'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1');
        $p->as_string;
    }
    $n += 50;
    last if time >= $end;
}
printf "%.1f\n", $n / (time - $t0);
"""


@dataclass
class Step:
    """One rung of the ladder."""

    rate: int
    calls: int
    elapsed: float
    successful: int
    failed: int
    clean: bool


@dataclass
class LadderResult:
    """What the ladder found for one system."""

    system: str
    steps: list[Step] = field(default_factory=list)
    error: str | None = None
    #: what the system said about itself (our proxy: CPU per packet)
    note: str | None = None

    @property
    def best(self) -> int | None:
        """The highest clean rate, or None."""
        clean = [s.rate for s in self.steps if s.clean]
        return max(clean) if clean else None


class TrioSipProxy(_PeerContext):
    """``benchmarks/sut_proxy.py`` on one backend, forwarding to ``next_hop``."""

    def __init__(self, next_hop: Address, backend: str, profile: Path | None = None) -> None:
        self.next_hop = next_hop
        self.backend = backend
        self.profile = profile

    async def __aenter__(self) -> TrioSipProxy:
        address = Address("127.0.0.1", free_port("127.0.0.1", "udp"))
        argv = [
            sys.executable,
            str(HERE / "sut_proxy.py"),
            "--backend", self.backend,
            "--listen", str(address),
            "--next-hop", str(self.next_hop),
        ]  # fmt: skip
        if self.profile is not None:
            argv += ["--profile", str(self.profile.resolve())]
        work = _WorkDir(None, f"proxy-{self.backend}")
        await self._launch("trio-sip", argv, work, (address, ("udp",)), _printed_ready)
        self._address = address
        return self


@asynccontextmanager
async def _no_proxy(next_hop: Address) -> AsyncIterator[Address]:
    yield next_hop


def _system(
    name: str, profile: Path | None
) -> Callable[[Address], AbstractAsyncContextManager[object]]:
    if name in ("trio", "asyncio"):
        return lambda hop: TrioSipProxy(hop, name, profile)
    if name == "netsip":
        perl = find_program("perl", "perl")
        if subprocess.run([perl, "-MNet::SIP", "-e", "1"], capture_output=True).returncode:
            raise PeerMissing("Perl module Net::SIP not found: install libnet-sip-perl")
        return lambda hop: NetSipProxy(hop, lifetime=3600, program=perl)
    if name == "kamailio":
        kamailio = find_program("kamailio", "kamailio")
        return lambda hop: KamailioProxy(hop, children=1, program=kamailio)
    if name == "direct":
        return _no_proxy
    raise ValueError(f"unknown system {name!r}")


def _address_of(peer: object) -> Address:
    return peer if isinstance(peer, Address) else peer.address  # type: ignore[attr-defined,no-any-return]


async def ladder(
    system: str,
    rates: Sequence[int],
    seconds: float,
    patience: int,
    sipp: str,
    profile: Path | None = None,
) -> LadderResult:
    """Climb the ladder of call rates for ``system``; stop after ``patience`` misses."""
    out = LadderResult(system)
    try:
        make = _system(system, profile)
    except PeerMissing as exc:
        out.error = str(exc)
        return out
    misses = 0
    try:
        async with (
            SippServer("uas", global_timeout=3600, program=sipp) as uas,
            make(uas.address) as peer,
        ):
            target = _address_of(peer)
            for rate in rates:
                calls = max(10, round(rate * seconds))
                nominal = calls / rate
                extra = [] if system == "direct" else ["-rsa", str(target)]
                result = await run_sipp(
                    "uac",
                    uas.address,
                    calls=calls,
                    rate=rate,
                    # Past this the step is lost anyway: do not wait for Timer B.
                    global_timeout=math.ceil(nominal * SLACK) + 2,
                    extra_args=extra,
                    program=sipp,
                )
                clean = result.ok and result.elapsed <= nominal * SLACK
                out.steps.append(
                    Step(rate, calls, result.elapsed, result.successful, result.failed, clean)
                )
                print(
                    f"  {system:<9} {rate:>5}/s x {calls:>5}: "
                    f"{result.successful:>5} ok {result.failed:>4} failed "
                    f"in {result.elapsed:5.2f} s (nominal {nominal:.2f}) "
                    f"{'clean' if clean else 'NOT clean'}",
                    file=sys.stderr,
                    flush=True,
                )
                misses = 0 if clean else misses + 1
                if misses >= patience:
                    break
        if isinstance(peer, TrioSipProxy):
            # sut_proxy.py's last line: CPU time per packet over the whole ladder.
            for line in peer.logs().splitlines():
                if "us per packet" in line:
                    out.note = line.split("; ", 2)[-1]
                    print(f"  {system:<9} {out.note}", file=sys.stderr, flush=True)
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    return out


def parser_rate_ours(seconds: float) -> float:
    """Parse + Via + serialise of the benchmark INVITE, messages per second."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(200):
            msg = parse_message(INVITE)
            msg.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKproxy1")
            msg.to_bytes()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def parser_rate_netsip(seconds: float) -> float | str:
    """Net::SIP::Packet doing the same, or why it could not run."""
    try:
        perl = find_program("perl", "perl")
    except PeerMissing as exc:
        return str(exc)
    done = subprocess.run(
        [perl, "-e", NETSIP_PARSER, f"{seconds:g}"],
        input=INVITE,
        capture_output=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip().splitlines()[0]
    return float(done.stdout)


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def print_table(results: Sequence[LadderResult], parser: tuple[float, float | str] | None) -> None:
    """The summary: each system's highest clean rate, and ratios."""
    by_name = {r.system: r.best for r in results}
    netsip, kamailio = by_name.get("netsip"), by_name.get("kamailio")
    print()
    if results:
        print(f"{'stateless proxy (UDP)':<30}{'calls/s':>9}{'vs Net::SIP':>13}{'vs Kamailio':>13}")
        for r in results:
            best = r.best
            shown = f"{best:,}" if best is not None else ("n/a" if r.error else "< ladder")
            print(
                f"{LABELS[r.system]:<30}{shown:>9}"
                f"{_ratio(best, netsip):>13}{_ratio(best, kamailio):>13}"
                + (f"  ({r.error})" if r.error else "")
            )
    if parser is not None:
        ours, theirs = parser
        print()
        print(f"{'parser (INVITE parse+Via+bytes)':<30}{'msgs/s':>9}{'vs Net::SIP':>13}")
        base = theirs if isinstance(theirs, float) else None
        print(f"{'trio-sip':<30}{ours:>9,.0f}{_ratio(ours, base):>13}")
        if base is not None:
            print(f"{'Net::SIP::Packet':<30}{base:>9,.0f}{'1.00x':>13}")
        else:
            print(f"{'Net::SIP::Packet':<30}{'n/a':>9}  ({theirs})")


async def run(args: argparse.Namespace) -> int:
    """Run the selected benchmarks and print the table."""
    systems = [s for s in args.systems.split(",") if s]
    for name in systems:
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    rates = SMOKE_LADDER if args.smoke else tuple(int(r) for r in args.rates.split(","))
    seconds = 2.0 if args.smoke else args.seconds
    results: list[LadderResult] = []
    if "proxy" in args.only:
        try:
            sipp = find_program("sipp", "sip-tester")
        except PeerMissing as exc:
            print(f"proxy benchmarks skipped: {exc}", file=sys.stderr)
        else:
            for name in systems:
                print(f"{LABELS[name]}:", file=sys.stderr, flush=True)
                profile = Path(args.profile) if args.profile and name == "trio" else None
                results.append(await ladder(name, rates, seconds, args.patience, sipp, profile))
    parser = None
    if "parser" in args.only:
        parser_seconds = 0.2 if args.smoke else args.parser_seconds
        parser = (parser_rate_ours(parser_seconds), parser_rate_netsip(parser_seconds))
    print_table(results, parser)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--systems",
        default="trio,asyncio,netsip,kamailio",
        help=f"proxies to measure, comma separated, from {','.join(SYSTEMS)}",
    )
    parser.add_argument(
        "--only",
        default="proxy,parser",
        help="benchmarks to run, comma separated: proxy, parser",
    )
    parser.add_argument("--rates", default=",".join(map(str, LADDER)), help="the ladder")
    parser.add_argument("--seconds", type=float, default=3.0, help="calls per step, in seconds")
    parser.add_argument("--patience", type=int, default=1, help="unclean steps before stopping")
    parser.add_argument("--parser-seconds", type=float, default=2.0)
    parser.add_argument("--profile", help="cProfile the trio proxy into this file")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to see it still runs")
    args = parser.parse_args(argv)
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
