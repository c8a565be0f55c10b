"""trio-sip against Net::SIP and Kamailio, measured in one run on one machine.

Run from the repository root::

    python benchmarks/run.py                     # everything, a few minutes
    python benchmarks/run.py --systems trio,kamailio --seconds 4
    python benchmarks/run.py --only parser
    python benchmarks/run.py --only uas,uas-cpu,registrar,memory
    python benchmarks/run.py --only uas --repeat 3   # median of three ladders each
    python benchmarks/run.py --smoke             # tiny sizes, lenient time: it still works

Proxy rows: SIPp's built-in ``uac`` calls SIPp's ``uas`` through each
stateless proxy (``-rsa``), on a ladder of call rates. Each step makes a
fixed number of calls (``--seconds`` worth); a step is *clean* when every
call succeeds, none fails and the run ends within 1.25 times its nominal
time. Climbing stops after ``--patience`` unclean steps in a row; then up
to ``--refine`` steps halve the gap between the highest clean rate and the
lowest unclean one above it, until they are within 5% of each other. A
system's figure is the highest clean rate. Every system runs in its own process
(ours: ``benchmarks/sut_proxy.py``), the one under test alone with SIPp.
With ``--repeat N`` the proxy, UAS and registrar rows run every system's
ladder N times, taking turns, each in a fresh process; the figure is the
median of the N.

UAS rows: SIPp's ``uac`` calls ``trio-sip answer`` (trio and asyncio) and
Net::SIP's ``Simple->listen`` directly, on the same ladder and rules.

The systems ``trio-2w`` and ``asyncio-2w`` are ``trio-sip proxy --workers
2`` in the proxy row and ``trio-sip answer --workers 2`` in the UAS row: two
processes behind one socket. What their distributor counted (received,
forwarded, dropped) over the whole ladder is printed after it.

UAS CPU row: the CPU time each of those answering processes spends per call
in a steady state, at one rate every one of them sustains (``--cpu-rate``).
SIPp calls for longer than 64*T1 first, so that the measured window
(``--cpu-seconds``) also pays for ending the transactions of earlier calls,
as a long run does. Steadier than a ladder (whose figure moves with the
step length and the machine's mood), and it says what a call costs.

Registrar rows: SIPp registers a new address-of-record per call
(``benchmarks/register.xml``) with ``trio-sip registrar`` and with Kamailio's
``registrar`` + ``usrloc`` (memory only, one worker), on a ladder of rates in
registrations per second.

Memory row: the resident size (VmRSS) of ``trio-sip answer`` once it holds
``--memory-calls`` established calls (SIPp ``uac`` pausing between ACK and
BYE); the target is under 200 MB for 10,000 calls.

Parser row: parse an INVITE, put a Via on top and serialise it, in messages
per second, against Net::SIP::Packet doing the same (a Perl script run here).

SIPp, the system under test and the SIPp peer share the machine's cores:
compare systems of one run, as ratios, not figures of different runs.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

import anyio

HERE: Final = Path(__file__).resolve().parent
# The interop harness (SIPp, Net::SIP and Kamailio runners) lives with the tests.
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from bench_parser import INVITE  # noqa: E402
from bench_uas_path import cpu_seconds  # noqa: E402

from interop.peers import (  # noqa: E402
    Address,
    KamailioProxy,
    KamailioRegistrar,
    NetSipProxy,
    NetSipUas,
    PeerError,
    PeerMissing,
    SippResult,
    SippServer,
    _Child,
    _count,
    _PeerContext,
    _printed_ready,
    _read_stats,
    _WorkDir,
    find_program,
    free_port,
    run_sipp,
)
from trio_sip.message import parse_message  # noqa: E402

#: Call rates tried, lowest first.
LADDER: Final = (
    100, 150, 200, 300, 400, 500, 700, 1000, 1200, 1400, 1700, 2000, 2500, 3000,
    3500, 4000, 5000, 6000, 8000,
)  # fmt: skip
SMOKE_LADDER: Final = (25,)
#: Registration rates tried (one transaction each: cheaper than a call).
REGISTER_LADDER: Final = (200, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000)
#: The memory row: calls held open, and the rate they are set up at.
MEMORY_CALLS: Final = 10_000
MEMORY_RATE: Final = 100
SMOKE_MEMORY_CALLS: Final = 50
#: Target of the memory row (issue 9): resident size with 10,000 calls.
MEMORY_TARGET_MB: Final = 200
ROWS: Final = ("proxy", "parser", "uas", "uas-cpu", "registrar", "memory")
#: The UAS CPU row: its rate (Net::SIP sustains about 250 calls/s here) and
#: the warm-up before the measured window: 64*T1 and a margin, so that
#: transactions of earlier calls end inside the window.
CPU_RATE: Final = 150
CPU_WARMUP: Final = 35.0
SMOKE_CPU_WARMUP: Final = 1.0
#: Steps added after the ladder, between its highest clean rate and the
#: lowest unclean one above (``--refine``), and how close the two must come.
REFINE: Final = 3
RESOLUTION: Final = 0.05
#: A step is clean when it ends within this factor of its nominal time.
SLACK: Final = 1.25
#: The same for ``--smoke``, which shows that every system still runs, not
#: how fast: a busy machine (a test suite beside it) must not fail it.
SMOKE_SLACK: Final = 4.0
#: How long a trio-sip command may take to stop: 64*T1 for the answers to
#: the BYEs of the calls it still holds, and some more.
STOP_GRACE: Final = 40.0
SYSTEMS: Final = ("trio", "asyncio", "netsip", "kamailio", "direct", "trio-2w", "asyncio-2w")
LABELS: Final = {
    "trio": "trio-sip proxy (trio)",
    "asyncio": "trio-sip proxy (asyncio)",
    "netsip": "Net::SIP stateless proxy",
    "kamailio": "Kamailio, 1 worker",
    "direct": "SIPp uac -> uas, no proxy",
    # Two processes behind one socket (proxy --workers 2).
    "trio-2w": "proxy --workers 2 (trio)",
    "asyncio-2w": "proxy --workers 2 (asyncio)",
}
#: The systems of the UAS and registrar rows, and their labels in the table.
UAS_LABELS: Final = {
    "trio": "trio-sip answer (trio)",
    "asyncio": "trio-sip answer (asyncio)",
    "netsip": "Net::SIP Simple->listen",
    # Two processes behind one socket (answer --workers 2): on this machine's
    # two cores, next to SIPp.
    "trio-2w": "answer --workers 2 (trio)",
    "asyncio-2w": "answer --workers 2 (asyncio)",
}
REGISTRAR_LABELS: Final = {
    "trio": "trio-sip registrar (trio)",
    "asyncio": "trio-sip registrar (asyncio)",
    "kamailio": "Kamailio registrar, 1 worker",
}
REGISTER_SCENARIO: Final = HERE / "register.xml"

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


@dataclass(frozen=True)
class Figure:
    """A system's figure in a row: the median of its rounds (``--repeat``).

    One round is one ladder, in a process of its own. The rounds of a row
    take turns (every system's first round, then every second one ...), so
    that a spell of a slower machine falls on all of them alike.
    """

    system: str
    rounds: tuple[LadderResult, ...]

    @property
    def best(self) -> int | None:
        """The median of the rounds' highest clean rates (of an even number of
        rounds, the lower middle one: a rate a round reached). A round
        without a clean step counts as the lowest; None when the median
        round is one of those."""
        figures = sorted(self.rounds, key=lambda r: -1 if r.best is None else r.best)
        return figures[(len(figures) - 1) // 2].best if figures else None

    @property
    def error(self) -> str | None:
        """Why there is no figure (the median round has none): the first
        error a round met, if any (else the table says "< ladder")."""
        if self.best is not None:
            return None
        return next((r.error for r in self.rounds if r.error), None)

    @property
    def note(self) -> str | None:
        """Each round's figure (when there are several), and what the last
        round's system counted."""
        said = []
        if len(self.rounds) > 1:
            said.append("rounds " + " / ".join(_shown(r) for r in self.rounds))
        last = self.rounds[-1].note if self.rounds else None
        if last:
            said.append(last)
        return "; ".join(said) or None


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


class TrioSipCommand(_PeerContext):
    """``trio-sip <command> --listen udp:...`` on one backend, in its own process.

    ``profile``: run it under cProfile, statistics written to that file when
    it is stopped (the command catches SIGTERM and returns normally).
    ``stop_signal``: how it is stopped (SIGKILL skips hanging up held calls).
    ``stop_grace``: how long it may take to stop before it is killed. A
    stopping ``answer`` hangs up the calls it still has and waits up to 64*T1
    for their answers (after an overloaded step SIPp has gone and none come);
    a ``--workers`` command prints its distributor's counts only at the end.
    """

    def __init__(
        self,
        command: str,
        backend: str,
        *args: str,
        profile: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self.command = command
        self.backend = backend
        self.args = args
        self.profile = profile
        self.stop_signal = stop_signal
        self.stop_grace = stop_grace

    async def __aenter__(self) -> TrioSipCommand:
        address = Address("127.0.0.1", free_port("127.0.0.1", "udp"))
        argv = [sys.executable]
        if self.profile is not None:
            argv += ["-m", "cProfile", "-o", str(self.profile.resolve())]
        argv += [
            "-m", "trio_sip", "--backend", self.backend,
            self.command, "--listen", f"udp:{address}", *self.args,
        ]  # fmt: skip
        work = _WorkDir(None, f"{self.command}-{self.backend}")
        # Bound is not enough with --workers: the distributor binds first and
        # says "listening on" once its workers serve.
        await self._launch("trio-sip", argv, work, (address, ("udp",)), _printed_listening)
        self._address = address
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._finish(self.stop_signal, self.stop_grace)


def _printed_listening(child: _Child) -> bool:
    try:
        return "listening on " in child.stdout_path.read_text()
    except OSError:
        return False


@asynccontextmanager
async def _no_proxy(next_hop: Address) -> AsyncIterator[Address]:
    yield next_hop


def _perl_with_netsip() -> str:
    perl = find_program("perl", "perl")
    if subprocess.run([perl, "-MNet::SIP", "-e", "1"], capture_output=True).returncode:
        raise PeerMissing("Perl module Net::SIP not found: install libnet-sip-perl")
    return perl


def _system(
    name: str, profile: Path | None
) -> Callable[[Address], AbstractAsyncContextManager[object]]:
    if name in ("trio", "asyncio"):
        return lambda hop: TrioSipProxy(hop, name, profile)
    if name == "netsip":
        perl = _perl_with_netsip()
        return lambda hop: NetSipProxy(hop, lifetime=3600, program=perl)
    if name == "kamailio":
        kamailio = find_program("kamailio", "kamailio")
        return lambda hop: KamailioProxy(hop, children=1, program=kamailio)
    if name == "direct":
        return _no_proxy
    if name in ("trio-2w", "asyncio-2w"):
        # The command itself: SIPp's Request-URI names the next hop.
        backend = name.split("-")[0]
        return lambda hop: TrioSipCommand("proxy", backend, "--workers", "2", profile=profile)
    raise ValueError(f"unknown system {name!r}")


def _address_of(peer: object) -> Address:
    return peer if isinstance(peer, Address) else peer.address  # type: ignore[attr-defined,no-any-return]


#: Runs one step: (rate, calls, nominal seconds) -> what SIPp saw.
StepRunner = Callable[[int, int, float], Awaitable[SippResult]]


async def climb(
    label: str,
    rates: Sequence[int],
    seconds: float,
    patience: int,
    run_step: StepRunner,
    slack: float = SLACK,
    refine: int = 0,
) -> list[Step]:
    """The ladder: a step per rate, ``seconds`` worth of calls each, until
    ``patience`` unclean steps in a row (clean: all calls succeeded, within
    ``slack`` times the nominal time). Then up to ``refine`` more steps
    between the highest clean rate and the lowest unclean one above it
    (:func:`next_probe`), so that a system's figure does not depend on
    where the rungs happen to fall."""
    steps: list[Step] = []
    misses = 0
    for rate in rates:
        steps.append(await _climb_step(label, rate, seconds, run_step, slack))
        misses = 0 if steps[-1].clean else misses + 1
        if misses >= patience:
            break
    for _ in range(refine):
        probe = next_probe(steps)
        if probe is None:
            break
        steps.append(await _climb_step(label, probe, seconds, run_step, slack))
    return steps


async def _climb_step(
    label: str, rate: int, seconds: float, run_step: StepRunner, slack: float
) -> Step:
    # One step of the climb: ``seconds`` worth of calls at ``rate``, judged and logged.
    calls = max(10, round(rate * seconds))
    nominal = calls / rate
    result = await run_step(rate, calls, nominal)
    clean = result.ok and result.elapsed <= nominal * slack
    print(
        f"  {label:<9} {rate:>5}/s x {calls:>5}: "
        f"{result.successful:>5} ok {result.failed:>4} failed "
        f"in {result.elapsed:5.2f} s (nominal {nominal:.2f}) "
        f"{'clean' if clean else 'NOT clean'}",
        file=sys.stderr,
        flush=True,
    )
    return Step(rate, calls, result.elapsed, result.successful, result.failed, clean)


def next_probe(steps: Sequence[Step], resolution: float = RESOLUTION) -> int | None:
    """The rate to try between the highest clean rate and the lowest unclean
    rate above it: their middle, rounded to :func:`round_rate`. None when
    there is nothing to narrow (no clean step, or none unclean above it) or
    the two are within ``resolution`` (a fraction of the clean rate) already.
    """
    clean = [step.rate for step in steps if step.clean]
    if not clean:
        return None
    low = max(clean)
    above = [step.rate for step in steps if not step.clean and step.rate > low]
    if not above:
        return None
    high = min(above)
    if high - low <= low * resolution:
        return None
    probe = round_rate((low + high) / 2)
    return probe if low < probe < high else None


def round_rate(rate: float) -> int:
    """``rate`` rounded to 10 calls/s below 1,000 and to 50 from there:
    finer than the ladder's resolution, and rates a reader can compare."""
    grain = 10 if rate < 1000 else 50
    return max(grain, round(rate / grain) * grain)


def _step_timeout(nominal: float, slack: float = SLACK) -> int:
    # Past this the step is lost anyway: do not wait for Timer B.
    return math.ceil(nominal * slack) + 2


async def ladder(
    system: str,
    rates: Sequence[int],
    seconds: float,
    patience: int,
    sipp: str,
    profile: Path | None = None,
    slack: float = SLACK,
    refine: int = 0,
) -> LadderResult:
    """Climb the ladder of call rates for ``system`` (:func:`climb`)."""
    out = LadderResult(system)
    try:
        make = _system(system, profile)
    except PeerMissing as exc:
        out.error = str(exc)
        return out
    try:
        async with (
            SippServer("uas", global_timeout=3600, program=sipp) as uas,
            make(uas.address) as peer,
        ):
            target = _address_of(peer)
            extra = [] if system == "direct" else ["-rsa", str(target)]

            async def step(rate: int, calls: int, nominal: float) -> SippResult:
                return await run_sipp(
                    "uac",
                    uas.address,
                    calls=calls,
                    rate=rate,
                    global_timeout=_step_timeout(nominal, slack),
                    extra_args=extra,
                    program=sipp,
                )

            out.steps = await climb(system, rates, seconds, patience, step, slack, refine)
        if isinstance(peer, TrioSipProxy):
            # sut_proxy.py's last line: CPU time per packet over the whole ladder.
            for line in peer.logs().splitlines():
                if "us per packet" in line:
                    out.note = line.split("; ", 2)[-1]
                    print(f"  {system:<9} {out.note}", file=sys.stderr, flush=True)
        _note_distributor(out, peer)
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    return out


def _server(
    row: str, name: str, profile: Path | None
) -> Callable[[], AbstractAsyncContextManager[_PeerContext]]:
    """The system ``name`` of the UAS or registrar row, ready to be entered."""
    if row == "uas" and name in ("trio", "asyncio"):
        return lambda: TrioSipCommand("answer", name, profile=profile)
    if row == "uas" and name in ("trio-2w", "asyncio-2w"):
        backend = name.split("-")[0]
        return lambda: TrioSipCommand("answer", backend, "--workers", "2", profile=profile)
    if row == "uas" and name == "netsip":
        # The harness's Net::SIP UAS: Simple->listen, no RTP sent.
        perl = _perl_with_netsip()
        return lambda: NetSipUas(lifetime=3600, program=perl)
    if row == "registrar" and name in ("trio", "asyncio"):
        # Bindings in memory; REGISTER lasts up to an hour (register.xml asks 3600).
        return lambda: TrioSipCommand("registrar", name, "--max-expires", "3600", profile=profile)
    if row == "registrar" and name == "kamailio":
        kamailio = find_program("kamailio", "kamailio")
        return lambda: KamailioRegistrar(children=1, program=kamailio)
    raise ValueError(f"no system {name!r} in the {row} row")


async def server_ladder(
    row: str,
    system: str,
    rates: Sequence[int],
    seconds: float,
    patience: int,
    sipp: str,
    profile: Path | None = None,
    slack: float = SLACK,
    refine: int = 0,
) -> LadderResult:
    """SIPp straight at one server: ``uac`` calls for ``uas``, REGISTERs for ``registrar``."""
    out = LadderResult(system)
    try:
        make = _server(row, system, profile)
    except PeerMissing as exc:
        out.error = str(exc)
        return out
    scenario: str | Path = "uac" if row == "uas" else REGISTER_SCENARIO
    try:
        async with make() as server:

            async def step(rate: int, calls: int, nominal: float) -> SippResult:
                return await run_sipp(
                    scenario,
                    server.address,
                    calls=calls,
                    rate=rate,
                    global_timeout=_step_timeout(nominal, slack),
                    program=sipp,
                )

            out.steps = await climb(system, rates, seconds, patience, step, slack, refine)
        _note_distributor(out, server)
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    return out


def _note_distributor(out: LadderResult, peer: object) -> None:
    """Keep (and print) the counts of a ``--workers`` command's distributor.

    Its last line, printed once the workers have stopped: ``distributor:
    workers=N received=... forwarded=... dropped=...`` (dropped: a worker's
    inbox was full, so SIPp had to retransmit).
    """
    if not isinstance(peer, TrioSipCommand):
        return
    for line in peer.logs().splitlines():
        if line.startswith("distributor: "):
            out.note = line.removeprefix("distributor: ")
            print(f"  {out.system:<9} {line}", file=sys.stderr, flush=True)


@dataclass
class CpuResult:
    """The CPU time one answering process spent on the calls of a window."""

    system: str
    rate: int
    #: Calls SIPp started in the window (``rate`` times its length).
    calls: int = 0
    cpu_seconds: float = 0.0
    #: Calls that failed in the whole run (any: the figure is then not shown).
    failed: int = 0
    error: str | None = None

    @property
    def us_per_call(self) -> float | None:
        """Microseconds of CPU per call, when every call of the run succeeded."""
        if self.error or self.failed or not self.calls:
            return None
        return self.cpu_seconds / self.calls * 1e6


async def uas_cpu(system: str, rate: int, warmup: float, window: float, sipp: str) -> CpuResult:
    """CPU per call of one UAS system, steady at ``rate`` calls/s.

    SIPp's ``uac`` calls for ``warmup`` + ``window`` seconds and a little
    more; the server's CPU time (user + system) is read when the warm-up
    ends and when the window does. SIPp starts calls at a constant rate, so
    the window holds ``rate * window`` of them, and a system that keeps up
    (no failed call in the run) has that many calls' work in it.
    """
    out = CpuResult(system, rate)
    try:
        make = _server("uas", system, None)
    except PeerMissing as exc:
        out.error = str(exc)
        return out
    seconds = warmup + window + 1
    calls = round(rate * seconds)
    try:
        async with make() as server:
            pid = server.pid
            with tempfile.TemporaryDirectory(prefix="cpu-sipp-") as work:
                result: SippResult | None = None

                async def load() -> None:
                    nonlocal result
                    result = await run_sipp(
                        "uac",
                        server.address,
                        calls=calls,
                        rate=rate,
                        global_timeout=_step_timeout(seconds),
                        workdir=Path(work),
                        program=sipp,
                    )

                async with anyio.create_task_group() as tg:
                    tg.start_soon(load)
                    await anyio.sleep(warmup)
                    before = cpu_seconds(pid)
                    await anyio.sleep(window)
                    out.cpu_seconds = cpu_seconds(pid) - before
                assert result is not None
                out.calls = round(rate * window)
                out.failed = calls - result.successful  # failed, or never completed
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    shown = f"{out.us_per_call:.0f} us CPU per call" if out.us_per_call else "no figure"
    print(
        f"  {system:<9} {rate}/s, {out.calls} calls in {window:g} s: "
        f"{out.cpu_seconds:.2f} s CPU, {out.failed} failed: {shown}",
        file=sys.stderr,
        flush=True,
    )
    return out


@dataclass
class MemoryResult:
    """What ``trio-sip answer`` held, and its resident size."""

    backend: str
    asked: int
    held: int = 0
    failed: int = 0
    idle_kb: int = 0
    rss_kb: int = 0
    open_fds: int = 0
    error: str | None = None

    @property
    def kb_per_call(self) -> float | None:
        """Resident growth per held call, in kB."""
        return (self.rss_kb - self.idle_kb) / self.held if self.held else None


def vmrss_kb(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux /proc), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise PeerError(f"no VmRSS for process {pid}")


# Descriptors the answering process has besides its calls (SIP leg, epoll, stdio ...).
_SPARE_FDS: Final = 256


def raise_fd_limit(calls: int) -> int:
    """Let the processes started from now on hold ``calls`` calls: two descriptors each.

    Each call holds an RTP and an RTCP socket, so 10,000 calls need more
    than a common limit of 20,000 descriptors. The soft limit is raised to
    what is needed, and the hard one too when the system allows it (root);
    children inherit them. Returns the soft limit in force.
    """
    wanted = 2 * calls + _SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def memory_row(backend: str, calls: int, rate: int, sipp: str) -> MemoryResult:
    """Set up ``calls`` calls to ``trio-sip answer`` and read its VmRSS while it holds them.

    SIPp's ``uac`` pauses between ACK and BYE (``-d``) for longer than the
    set-up takes; its statistics file (written every second) says when every
    call has been created. Calls are then given two seconds to settle, the
    size read, and SIPp stopped (the calls are never hung up).
    """
    out = MemoryResult(backend, calls)
    limit = raise_fd_limit(calls)
    if limit < 2 * calls + _SPARE_FDS:
        print(
            f"  descriptor limit {limit}: not every one of {calls} calls can be held",
            file=sys.stderr,
            flush=True,
        )
    setup = calls / rate
    hold = setup * 2 + 30
    try:
        # Killed once measured: hanging up thousands of calls SIPp no longer
        # answers would only cost time.
        async with TrioSipCommand("answer", backend, stop_signal=signal.SIGKILL) as answer:
            pid = answer.pid
            await anyio.sleep(0.5)
            out.idle_kb = vmrss_kb(pid)
            with tempfile.TemporaryDirectory(prefix="memory-sipp-") as work:
                stats = Path(work) / "stats.csv"
                async with anyio.create_task_group() as tg:
                    load_done = anyio.Event()

                    async def load() -> None:
                        # Ends only early (SIPp failed, or exited): normally
                        # it is cancelled once the size is read.
                        try:
                            await run_sipp(
                                "uac",
                                answer.address,
                                calls=calls,
                                rate=rate,
                                limit=calls,
                                global_timeout=hold + 30,
                                timeout_error=False,
                                extra_args=["-d", str(round(hold * 1000)), "-fd", "1"],
                                workdir=Path(work),
                                program=sipp,
                            )
                        except PeerError as exc:
                            out.error = str(exc).splitlines()[0]
                        finally:
                            load_done.set()

                    tg.start_soon(load)
                    created = 0
                    with anyio.move_on_after(setup * 3 + 30):
                        while created < calls and not load_done.is_set():
                            await anyio.sleep(0.5)
                            created = _count(_read_stats(stats), "TotalCallCreated")
                    await anyio.sleep(1.5)  # the last answers, one more statistics line
                    row = _read_stats(stats)
                    out.rss_kb = vmrss_kb(pid)
                    out.open_fds = len(os.listdir(f"/proc/{pid}/fd"))
                    out.failed = _count(row, "FailedCall(C)")
                    out.held = _count(row, "CurrentCall")
                    tg.cancel_scope.cancel()
    except PeerError as exc:
        out.error = str(exc).splitlines()[0]
    print(
        f"  {backend:<9} {out.held:>6} calls held ({out.failed} failed): "
        f"VmRSS {out.rss_kb / 1024:.1f} MB (idle {out.idle_kb / 1024:.1f} MB), "
        f"{out.open_fds} fds",
        file=sys.stderr,
        flush=True,
    )
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


def _shown(r: LadderResult | Figure) -> str:
    best = r.best
    return f"{best:,}" if best is not None else ("n/a" if r.error else "< ladder")


def _ladder_table(
    title: str,
    unit: str,
    labels: dict[str, str],
    results: Sequence[Figure],
    bases: Sequence[tuple[str, str]],
) -> None:
    """One table of ladder figures with a ratio column per ``(base system, heading)``."""
    if not results:
        return
    by_name = {r.system: r.best for r in results}
    print()
    print(f"{title:<30}{unit:>9}" + "".join(f"{heading:>13}" for _, heading in bases))
    for r in results:
        ratios = "".join(f"{_ratio(r.best, by_name.get(base)):>13}" for base, _ in bases)
        said = r.error or r.note  # why there is no figure, or what the system counted
        print(f"{labels[r.system]:<30}{_shown(r):>9}{ratios}" + (f"  ({said})" if said else ""))


@dataclass
class Tables:
    """Everything one run measured, for :func:`print_table`."""

    proxy: list[Figure] = field(default_factory=list)
    uas: list[Figure] = field(default_factory=list)
    uas_cpu: list[CpuResult] = field(default_factory=list)
    registrar: list[Figure] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    parser: tuple[float, float | str] | None = None


def print_table(tables: Tables) -> None:
    """The summary: each system's highest clean rate, and ratios."""
    netsip, kamailio = ("netsip", "vs Net::SIP"), ("kamailio", "vs Kamailio")
    _ladder_table("stateless proxy (UDP)", "calls/s", LABELS, tables.proxy, (netsip, kamailio))
    _ladder_table("UAS (SIPp uac, UDP)", "calls/s", UAS_LABELS, tables.uas, (netsip,))
    if tables.uas_cpu:
        # Per call, cheaper is better: the ratio is Net::SIP's cost over ours.
        costs = {c.system: c.us_per_call for c in tables.uas_cpu}
        base = costs.get("netsip")
        print()
        print(
            f"{f'UAS CPU, {tables.uas_cpu[0].rate} calls/s':<30}{'us/call':>9}{'vs Net::SIP':>13}"
        )
        for c in tables.uas_cpu:
            cost = c.us_per_call
            if cost is None:
                why = c.error or f"{c.failed} calls failed"
                print(f"{UAS_LABELS[c.system]:<30}{'n/a':>9}  ({why})")
                continue
            ratio = _ratio(base, cost) if base is not None else "-"
            print(f"{UAS_LABELS[c.system]:<30}{cost:>9,.0f}{ratio:>13}")
    _ladder_table(
        "registrar (SIPp, UDP)", "regs/s", REGISTRAR_LABELS, tables.registrar, (kamailio,)
    )
    if tables.memory:
        print()
        print(
            f"{'memory (trio-sip answer)':<30}{'calls':>9}{'VmRSS MB':>10}"
            f"{'kB/call':>9}{'10k calls MB':>14}"
        )
        for m in tables.memory:
            label = f"trio-sip answer ({m.backend})"
            per_call = m.kb_per_call
            if per_call is None:
                print(f"{label:<30}{'n/a':>9}" + (f"  ({m.error})" if m.error else ""))
                continue
            # What 10,000 calls would take at this growth per call (the target's size).
            at_target = (m.idle_kb + per_call * MEMORY_CALLS) / 1024
            verdict = "ok" if at_target < MEMORY_TARGET_MB else "over"
            print(
                f"{label:<30}{m.held:>9,}{m.rss_kb / 1024:>10.1f}{per_call:>9.1f}"
                f"{at_target:>14.1f}  (target < {MEMORY_TARGET_MB}: {verdict}"
                + (f"; {m.failed} failed" if m.failed else "")
                + ")"
            )
    if tables.parser is not None:
        ours, theirs = tables.parser
        print()
        print(f"{'parser (INVITE parse+Via+bytes)':<30}{'msgs/s':>9}{'vs Net::SIP':>13}")
        base = theirs if isinstance(theirs, float) else None
        print(f"{'trio-sip':<30}{ours:>9,.0f}{_ratio(ours, base):>13}")
        if base is not None:
            print(f"{'Net::SIP::Packet':<30}{base:>9,.0f}{'1.00x':>13}")
        else:
            print(f"{'Net::SIP::Packet':<30}{'n/a':>9}  ({theirs})")


async def rounds(
    repeat: int,
    systems: Sequence[str],
    labels: dict[str, str],
    measure: Callable[[str], Awaitable[LadderResult]],
) -> list[Figure]:
    """``repeat`` rounds of one row: each system's ladder (``measure``) in
    turn, then all of them again; one :class:`Figure` per system."""
    results: dict[str, list[LadderResult]] = {name: [] for name in systems}
    for index in range(repeat):
        for name in systems:
            said = f" (round {index + 1} of {repeat})" if repeat > 1 else ""
            print(f"{labels[name]}{said}:", file=sys.stderr, flush=True)
            results[name].append(await measure(name))
    return [Figure(name, tuple(found)) for name, found in results.items()]


async def run(args: argparse.Namespace) -> int:
    """Run the selected benchmarks and print the table."""
    systems = [s for s in args.systems.split(",") if s]
    for name in systems:
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    only = [o for o in args.only.split(",") if o]
    for name in only:
        if name not in ROWS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(ROWS)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    rates = SMOKE_LADDER if args.smoke else tuple(int(r) for r in args.rates.split(","))
    register_rates = (
        SMOKE_LADDER if args.smoke else tuple(int(r) for r in args.register_rates.split(","))
    )
    seconds = 2.0 if args.smoke else args.seconds
    slack = SMOKE_SLACK if args.smoke else SLACK
    refine = 0 if args.smoke else args.refine
    tables = Tables()
    sipp: str | None = None
    if {"proxy", "uas", "uas-cpu", "registrar", "memory"} & set(only):
        try:
            sipp = find_program("sipp", "sip-tester")
        except PeerMissing as exc:
            print(f"SIPp benchmarks skipped: {exc}", file=sys.stderr)
    if sipp is not None:
        program = sipp  # for the closures: known not to be None

        async def proxy_round(name: str) -> LadderResult:
            profile = Path(args.profile) if args.profile and name == "trio" else None
            return await ladder(
                name, rates, seconds, args.patience, program, profile, slack, refine
            )

        async def server_round(row: str, row_rates: Sequence[int], name: str) -> LadderResult:
            profile = (
                Path(args.profile_uas)
                if row == "uas" and args.profile_uas and name == "trio"
                else None
            )
            return await server_ladder(
                row, name, row_rates, seconds, args.patience, program, profile, slack, refine
            )

        if "proxy" in only:
            tables.proxy = await rounds(args.repeat, systems, LABELS, proxy_round)
        if "uas" in only:
            names = [s for s in systems if s in UAS_LABELS]
            measure = partial(server_round, "uas", rates)
            tables.uas = await rounds(args.repeat, names, UAS_LABELS, measure)
        if "registrar" in only:
            names = [s for s in systems if s in REGISTRAR_LABELS]
            measure = partial(server_round, "registrar", register_rates)
            tables.registrar = await rounds(args.repeat, names, REGISTRAR_LABELS, measure)
    if sipp is not None and "uas-cpu" in only:
        cpu_rate = SMOKE_LADDER[0] if args.smoke else args.cpu_rate
        warmup = SMOKE_CPU_WARMUP if args.smoke else CPU_WARMUP
        window = 1.0 if args.smoke else args.cpu_seconds
        # One process each: the CPU time read is that of the one answering.
        for name in (s for s in systems if s in ("trio", "asyncio", "netsip")):
            print(f"CPU per call, {UAS_LABELS[name]}:", file=sys.stderr, flush=True)
            tables.uas_cpu.append(await uas_cpu(name, cpu_rate, warmup, window, sipp))
    if sipp is not None and "memory" in only:
        calls = SMOKE_MEMORY_CALLS if args.smoke else args.memory_calls
        rate = SMOKE_LADDER[0] if args.smoke else args.memory_rate
        for name in (s for s in systems if s in ("trio", "asyncio")):
            print(f"memory, trio-sip answer ({name}):", file=sys.stderr, flush=True)
            tables.memory.append(await memory_row(name, calls, rate, sipp))
    if "parser" in only:
        parser_seconds = 0.2 if args.smoke else args.parser_seconds
        tables.parser = (parser_rate_ours(parser_seconds), parser_rate_netsip(parser_seconds))
    print_table(tables)
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
        help=f"systems to measure, comma separated, from {','.join(SYSTEMS)} "
        "(each row takes those it has)",
    )
    parser.add_argument(
        "--only",
        default=",".join(ROWS),
        help=f"benchmarks to run, comma separated: {', '.join(ROWS)}",
    )
    parser.add_argument(
        "--rates", default=",".join(map(str, LADDER)), help="the ladder (proxy, UAS)"
    )
    parser.add_argument(
        "--register-rates",
        default=",".join(map(str, REGISTER_LADDER)),
        help="the registrar row's ladder",
    )
    parser.add_argument("--cpu-rate", type=int, default=CPU_RATE, help="the UAS CPU row's calls/s")
    parser.add_argument(
        "--cpu-seconds", type=float, default=10.0, help="the UAS CPU row's measured window"
    )
    parser.add_argument("--memory-calls", type=int, default=MEMORY_CALLS)
    parser.add_argument(
        "--memory-rate", type=int, default=MEMORY_RATE, help="calls/s setting them up"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="calls per step, in seconds")
    parser.add_argument("--patience", type=int, default=1, help="unclean steps before stopping")
    parser.add_argument(
        "--refine",
        type=int,
        default=REFINE,
        help="steps after the ladder, between its highest clean rate and the next unclean one",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="ladders per system in the proxy, UAS and registrar rows, taking turns; "
        "each figure is the median",
    )
    parser.add_argument("--parser-seconds", type=float, default=2.0)
    parser.add_argument("--profile", help="cProfile the trio proxy into this file")
    parser.add_argument("--profile-uas", help="cProfile trio-sip answer (trio) into this file")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to see it still runs")
    args = parser.parse_args(argv)
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
