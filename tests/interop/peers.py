"""Drive real SIP peers from tests and benchmarks: SIPp, Net::SIP and Kamailio.

Everything here is async on anyio, so it runs on trio and on asyncio alike,
and every peer is a child process that is bounded in time and always reaped,
also when the caller is cancelled. Peers listen on loopback only, on ports
chosen at run time.

Discovery, before the event loop starts (the ``sipp``, ``netsip`` and
``kamailio`` fixtures in ``conftest.py`` do this)::

    require_program("sipp", "sip-tester")      # skip, or fail under CI

A bounded SIPp run and a SIPp server::

    async with SippServer("uas", transport=Transport.TCP) as uas:
        result = await run_sipp("uac", uas.address, transport=Transport.TCP, calls=20)
    assert result.ok, result.describe()

The other peers are async context managers with an ``address`` to send to::

    async with NetSipUas() as uas: ...                     # answers INVITE and BYE
    async with NetSipProxy(next_hop=uas.address) as proxy: ...
    async with KamailioProxy(next_hop=uas.address) as proxy: ...

A peer that cannot start, or exits early, raises :class:`PeerError` with the
tail of its logs; ``peer.logs()`` gives the same tails, also after exit.
Scripts and XML scenarios shipped with the harness are under
:data:`SCENARIOS` (``netsip_uas.pl``, ``netsip_proxy.pl``,
``options_uac.xml``).

Found while writing it (SIPp 3.6.1): -timeout has a granularity of one
second; SIGTERM stops SIPp at once with its statistics written; one SIGUSR1
is a soft stop that waits for running calls, and a second one makes SIPp
spin at full CPU, ignoring its own -timeout; Debian's build has no TLS.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import errno
import functools
import ipaddress
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal, NoReturn, Self

import anyio
import anyio.abc
import pytest

__all__ = [
    "Address",
    "KamailioProxy",
    "KamailioRegistrar",
    "NetSipProxy",
    "NetSipUas",
    "PeerError",
    "PeerMissing",
    "SippExit",
    "SippResult",
    "SippServer",
    "Transport",
    "find_program",
    "free_port",
    "ipv6_available",
    "peers_required",
    "require_perl_module",
    "require_program",
    "run_sipp",
    "sipp_has_tls",
]

SCENARIOS: Final = Path(__file__).parent / "scenarios"
"""The Perl scripts and SIPp XML scenarios that ship with the harness."""

# How long a peer may take to bind its sockets, and to exit once asked to.
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0
# SIPp stops itself at its -timeout; this is how much longer the harness
# waits before it calls the run hung and kills it.
EXIT_GRACE: Final = 5.0
# How much of a log a failure report quotes.
TAIL_LINES: Final = 40
TAIL_CHARS: Final = 4000


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------


class PeerError(RuntimeError):
    """A peer program did not start, did not stop, or exited too early."""


class PeerMissing(PeerError):
    """A peer program (or Perl module) is not installed."""


def peers_required() -> bool:
    """True when a missing peer must fail the test run instead of skipping.

    CI services set ``CI=true``; ``TRIO_SIP_REQUIRE_PEERS=1`` asks for the same
    on a developer machine. ``CI=false`` and ``CI=0`` do not count, so that a
    shell profile exporting them does not turn skips into failures.
    """
    ci = os.environ.get("CI", "").strip().lower()
    if ci and ci not in ("false", "0"):
        return True
    return os.environ.get("TRIO_SIP_REQUIRE_PEERS", "").strip() == "1"


def _missing(reason: str) -> NoReturn:
    # A skip hides a broken CI image behind a green run: under CI the same
    # reason is a failure.
    if peers_required():
        pytest.fail(f"{reason} (peers are required: CI or TRIO_SIP_REQUIRE_PEERS=1)", pytrace=False)
    pytest.skip(reason)


def _not_found(name: str, package: str) -> str:
    hint = " (Debian installs it under sbin: add that to PATH)" if name == "kamailio" else ""
    return f"{name} not found: install Debian package {package}{hint}"


def find_program(name: str, package: str) -> str:
    """The path of `name` on PATH; raise :class:`PeerMissing` when absent.

    For code outside pytest (benchmarks); tests use :func:`require_program`.
    """
    path = shutil.which(name)
    if path is None:
        raise PeerMissing(_not_found(name, package))
    return path


def require_program(name: str, package: str) -> str:
    """The path of `name` on PATH, or skip the test (fail it under CI).

    Call it outside the event loop, e.g. in a fixture: pytest's skip
    exception must not travel through a task group.
    """
    path = shutil.which(name)
    if path is None:
        _missing(_not_found(name, package))
    return path


@functools.cache
def _perl_has_module(perl: str, module: str) -> bool:
    done = subprocess.run(
        [perl, f"-M{module}", "-e", "1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0


def require_perl_module(module: str, package: str) -> str:
    """The path of ``perl`` when it can load `module`, else skip (fail under CI)."""
    perl = require_program("perl", "perl")
    if not _perl_has_module(perl, module):
        _missing(f"Perl module {module} not found: install Debian package {package}")
    return perl


@functools.cache
def sipp_has_tls(program: str | None = None) -> bool:
    """Whether this SIPp was built with TLS (``-t l1``); Debian's is not."""
    sipp = program or find_program("sipp", "sip-tester")
    done = subprocess.run(
        [sipp, "-v"], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    # The version line lists the build options: "SIPp v3.6.1-TLS-SCTP-PCAP-RTPSTREAM."
    return "-TLS" in done.stdout + done.stderr


# --------------------------------------------------------------------------
# Addresses and ports
# --------------------------------------------------------------------------


class Transport(enum.Enum):
    """A SIP transport, with the names each peer program uses for it."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def sipp_mode(self) -> str:
        """SIPp's ``-t`` value: one socket for all calls."""
        return {"udp": "u1", "tcp": "t1", "tls": "l1"}[self.value]

    @property
    def stream(self) -> bool:
        return self is not Transport.UDP


@dataclass(frozen=True, slots=True)
class Address:
    """A loopback host and a port; ``str()`` gives ``host:port`` (``[::1]:port``)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        _check_loopback(self.host)

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def bracketed_host(self) -> str:
        """The host as it appears in a URI or a ``host:port``."""
        return f"[{self.host}]" if self.family is socket.AF_INET6 else self.host

    def __str__(self) -> str:
        return f"{self.bracketed_host}:{self.port}"


def _check_loopback(host: str) -> None:
    # Test peers answer anything that reaches them; binding them elsewhere
    # than loopback would expose them to the network. Literal addresses only,
    # so that "localhost" resolving differently on some machine cannot matter.
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r}: give a literal loopback address, 127.0.0.1 or ::1") from None
    if not ip.is_loopback:
        raise ValueError(f"{host}: peers run on loopback only")


@functools.cache
def ipv6_available() -> bool:
    """Whether ``::1`` can be bound (some containers have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1", kind: Literal["udp", "tcp", "both"] = "both") -> int:
    """A port on `host` that is free right now for UDP, TCP or both.

    The kernel picks it (bind to port 0); for ``both`` the same number must
    also be free for the other protocol, as SIP listens on UDP and TCP
    together. Another process may still take it before the peer binds it:
    that is rare on loopback and shows as a peer that fails to start.
    """
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    first, *others = {
        "udp": [socket.SOCK_DGRAM],
        "tcp": [socket.SOCK_STREAM],
        "both": [socket.SOCK_DGRAM, socket.SOCK_STREAM],
    }[kind]
    for _ in range(100):
        with socket.socket(family, first) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
            try:
                for other in others:
                    with socket.socket(family, other) as sock:
                        sock.bind((host, port))
            except OSError:
                continue  # taken for the other protocol: draw another
            return port
    raise PeerError(f"no free {kind} port on {host} after 100 tries")


def _read_proc_net(kind: Literal["udp", "tcp"]) -> list[tuple[str, int]] | None:
    """Sockets bound for UDP / listening for TCP, from Linux's /proc/net.

    None when there is no such table (not Linux): the caller then probes.
    """
    state = "07" if kind == "udp" else "0A"  # TCP_CLOSE for UDP sockets, TCP_LISTEN
    found: list[tuple[str, int]] = []
    seen_table = False
    for suffix, family in (("", socket.AF_INET), ("6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/net/{kind}{suffix}").read_text().splitlines()[1:]
        except OSError:
            continue
        seen_table = True
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != state:
                continue
            addr_hex, port_hex = fields[1].split(":")
            # The address is printed as 32-bit words in host byte order.
            words = [int(addr_hex[i : i + 8], 16) for i in range(0, len(addr_hex), 8)]
            packed = b"".join(struct.pack("=I", word) for word in words)
            found.append((socket.inet_ntop(family, packed), int(port_hex, 16)))
    return found if seen_table else None


def _is_bound(address: Address, kind: Literal["udp", "tcp"]) -> bool:
    """Whether some process has bound `address` (UDP) or listens on it (TCP)."""
    table = _read_proc_net(kind)
    if table is not None:
        # Reading the kernel's table has no side effect, unlike a probe bind
        # that would hold the port for a moment and could make the peer's own
        # bind fail.
        wildcard = "::" if address.family is socket.AF_INET6 else "0.0.0.0"
        normal = ipaddress.ip_address(address.host).compressed
        return any(port == address.port and host in (normal, wildcard) for host, port in table)
    kind_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(address.family, kind_type) as probe:
            probe.bind((address.host, address.port))
    except OSError as err:
        return err.errno == errno.EADDRINUSE
    return False


def _kinds(transport: Transport) -> tuple[Literal["udp", "tcp"], ...]:
    return ("tcp",) if transport.stream else ("udp",)


# --------------------------------------------------------------------------
# A child process with its output in files
# --------------------------------------------------------------------------


def _tail(path: Path, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])[-chars:]


class _Child:
    """One peer program, in its own process group, writing to files in `workdir`.

    Output goes to files rather than pipes so that nobody has to drain them:
    a chatty peer can never block on a full pipe, and the logs outlive the
    process for the failure report.
    """

    def __init__(self, name: str, argv: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.workdir = workdir
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._process: anyio.abc.Process | None = None
        self._files: list[IO[bytes]] = []

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def start(self) -> None:
        out = self.stdout_path.open("wb")
        self._files.append(out)
        err = self.stderr_path.open("wb")
        self._files.append(err)
        self._process = await anyio.open_process(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=self.workdir,
            # Its own process group: Kamailio forks workers, and a group can
            # be killed as a whole. It also keeps the terminal's Ctrl-C away
            # from the peers; the harness stops them itself.
            start_new_session=True,
        )

    async def wait(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def wait_ready(self, ready: Callable[[_Child], bool]) -> None:
        """Poll `ready` until it holds; raise PeerError if the peer exits or is slow."""
        with anyio.move_on_after(START_TIMEOUT):
            while True:
                if ready(self):
                    return
                if self.returncode is not None:
                    raise PeerError(
                        f"{self.name} exited with {self.returncode} before it was ready\n"
                        + self.report()
                    )
                await anyio.sleep(0.02)
        raise PeerError(f"{self.name} not ready after {START_TIMEOUT} s\n" + self.report())

    def _signal_group(self, signum: signal.Signals) -> None:
        # Only while the leader is not reaped: until then its pid is also the
        # group's id and cannot belong to anyone else.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def stop(
        self, first: signal.Signals = signal.SIGTERM, grace: float = STOP_TIMEOUT
    ) -> int:
        """Send `first`, wait `grace` seconds, then SIGKILL the group; always reap.

        Shielded: it runs to the end even when the caller is being
        cancelled, so no peer outlives the test that started it.
        """
        process = self._process
        with anyio.CancelScope(shield=True):
            try:
                if process is None:  # it never started
                    return 0
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(first)
                    with anyio.move_on_after(grace):
                        await process.wait()
                if process.returncode is None:
                    self._signal_group(signal.SIGKILL)
                # Waits, and releases the backend's handle on the process.
                await process.aclose()
            finally:
                for file in self._files:
                    file.close()
                self._files.clear()
        return 0 if process is None or process.returncode is None else process.returncode

    def report(self) -> str:
        """The command line and the tails of stdout and stderr, for error messages."""
        parts = [f"command: {' '.join(self.argv)}"]
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = _tail(path)
            if text:
                parts.append(f"--- {self.name} {label} (tail) ---\n{text}")
        return "\n".join(parts)


class _WorkDir:
    """A directory for a peer's files: the caller's, or a temporary one."""

    def __init__(self, given: Path | None, prefix: str) -> None:
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if given is None:
            self._temp = tempfile.TemporaryDirectory(prefix=f"trio-sip-{prefix}-")
            self.path = Path(self._temp.name)
        else:
            given.mkdir(parents=True, exist_ok=True)
            self.path = given

    def cleanup(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()


class _PeerContext:
    """Shared lifetime of the long-running peers: start, ready, stop, reap."""

    _child: _Child | None = None
    _workdir: _WorkDir | None = None
    _address: Address | None = None

    @property
    def address(self) -> Address:
        """Where to send requests to this peer (known once entered)."""
        if self._address is None:
            raise RuntimeError("the peer is not running: use it in `async with`")
        return self._address

    @property
    def pid(self) -> int:
        """The peer's process id (for tests of the harness)."""
        if self._child is None:
            raise RuntimeError("the peer is not running: use it in `async with`")
        return self._child.pid

    _final_logs: str | None = None

    def logs(self) -> str:
        """The command line and the tails of the peer's output, also after exit."""
        if self._final_logs is not None:
            return self._final_logs
        return "" if self._child is None else self._child.report()

    async def _launch(
        self,
        name: str,
        argv: Sequence[str],
        workdir: _WorkDir,
        listens: tuple[Address, Sequence[Literal["udp", "tcp"]]],
        ready: Callable[[_Child], bool] | None = None,
    ) -> None:
        """Start the peer and wait until it listens (and `ready`, if given, holds)."""
        address, kinds = listens
        if any(_is_bound(address, kind) for kind in kinds):
            # Readiness is "someone listens there": with the port already
            # taken it would pass at once, and the peer fail behind our back.
            workdir.cleanup()
            raise PeerError(f"{name}: {'/'.join(kinds)} port {address} is already in use")

        def listening(child: _Child) -> bool:
            return all(_is_bound(address, kind) for kind in kinds) and (
                ready is None or ready(child)
            )

        self._workdir = workdir
        self._child = _Child(name, argv, workdir.path)
        try:
            await self._child.start()
            await self._child.wait_ready(listening)
        except BaseException:
            await self._child.stop()
            workdir.cleanup()
            raise

    async def _finish(
        self, first: signal.Signals = signal.SIGTERM, grace: float = STOP_TIMEOUT
    ) -> int:
        assert self._child is not None
        assert self._workdir is not None
        try:
            return await self._child.stop(first, grace)
        finally:
            # The files go with the directory; keep what a failure report
            # quotes, as tests assert after the peer has stopped.
            self._final_logs = self._child.report()
            self._workdir.cleanup()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._finish()


# --------------------------------------------------------------------------
# SIPp
# --------------------------------------------------------------------------


class SippExit(enum.IntEnum):
    """SIPp's documented exit codes (``sipp -h``); -1 and -2 arrive as 255, 254."""

    ALL_SUCCEEDED = 0  # also: a server stopped with no call running
    SOME_FAILED = 1
    INTERNAL_COMMAND = 97  # also: -timeout without -timeout_error; SIGTERM during calls
    NO_CALLS = 99
    FATAL = 255  # also: the global -timeout with -timeout_error
    BIND_ERROR = 254


@dataclass(frozen=True, slots=True)
class SippResult:
    """What one SIPp run did, read back from its statistics and logs.

    Counts are cumulative over the run. `current` counts calls still running
    when SIPp stopped: a global timeout, or a stopped ``uas`` whose calls
    were in their final 4-second timewait.
    """

    command: tuple[str, ...]
    exit_code: int
    calls_requested: int | None
    created: int
    successful: int
    failed: int
    current: int
    retransmissions: int
    timed_out: bool
    elapsed: float
    stats: Mapping[str, str] = field(repr=False)
    errors_tail: str = field(repr=False)
    screen_tail: str = field(repr=False)

    @property
    def outcome(self) -> SippExit | None:
        """The exit code's meaning; None for a signal or an undocumented code."""
        try:
            return SippExit(self.exit_code)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        """Every call succeeded and none failed or was left running."""
        return (
            self.outcome is SippExit.ALL_SUCCEEDED
            and self.failed == 0
            and self.current == 0
            and (self.calls_requested is None or self.successful == self.calls_requested)
        )

    def describe(self) -> str:
        """A summary for assertion messages; with the log tails unless `ok`."""
        outcome = self.outcome.name if self.outcome is not None else "unknown"
        summary = (
            f"{' '.join(self.command)}\n"
            f"exit {self.exit_code} ({outcome}){' after the global timeout' * self.timed_out}: "
            f"{self.created} created, {self.successful} successful, {self.failed} failed, "
            f"{self.current} running, {self.retransmissions} retransmissions "
            f"in {self.elapsed:.2f} s"
        )
        if self.ok:
            return summary
        return (
            f"{summary}\n--- errors (tail) ---\n{self.errors_tail}\n"
            f"--- screen (tail) ---\n{self.screen_tail}"
        )


def _seconds(value: float) -> str:
    # SIPp checks -timeout once a second and truncates "2500ms" to 2 s; round
    # up so that the bound is never shorter than asked.
    return f"{max(1, math.ceil(value))}s"


def _millis(value: float) -> str:
    return str(max(1, round(value * 1000)))


def _sipp_argv(
    program: str,
    scenario: str | os.PathLike[str],
    target: Address | None,
    *,
    transport: Transport,
    local: Address,
    workdir: Path,
    calls: int | None,
    rate: float | None,
    rate_period: float | None,
    limit: int | None,
    lost: float | None,
    global_timeout: float,
    timeout_error: bool,
    recv_timeout: float | None,
    extra_args: Sequence[str],
) -> list[str]:
    if "-bg" in extra_args:
        # In the background SIPp forks and the harness would lose the process
        # it has to bound and reap.
        raise ValueError("-bg is not allowed: the harness owns the process")
    if transport is Transport.TLS and not sipp_has_tls(program):
        raise PeerError("this SIPp has no TLS (-t l1): it was built without OpenSSL")
    argv = [program]
    if target is not None:
        if target.family != local.family:
            raise ValueError(f"target {target} and local {local} are of different families")
        argv.append(str(target))
    if isinstance(scenario, os.PathLike) or str(scenario).endswith(".xml"):
        argv += ["-sf", os.fspath(Path(scenario).resolve())]
    else:
        argv += ["-sn", str(scenario)]
    argv += [
        "-t", transport.sipp_mode,
        # Loopback for everything SIPp opens: signalling (-i with -bind_local,
        # else it listens on all addresses), media (-mi) and its UDP control
        # socket (-ci, else 0.0.0.0:8888; IPv4, as SIPp cannot open it on ::1).
        "-i", local.host, "-bind_local", "-p", str(local.port),
        "-mi", local.host, "-ci", "127.0.0.1",
        "-nostdin",
        "-timeout", _seconds(global_timeout),
        # Results are read back from these files once SIPp has exited.
        "-trace_stat", "-stf", str(workdir / "stats.csv"),
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        "-trace_screen", "-screen_file", str(workdir / "screen.log"),
    ]  # fmt: skip
    if timeout_error:
        argv.append("-timeout_error")
    if calls is not None:
        argv += ["-m", str(calls)]
    if rate is not None:
        argv += ["-r", f"{rate:g}"]
    if rate_period is not None:
        argv += ["-rp", _millis(rate_period)]
    if limit is not None:
        argv += ["-l", str(limit)]
    if lost is not None:
        argv += ["-lost", f"{lost:g}"]
    if recv_timeout is not None:
        argv += ["-recv_timeout", _millis(recv_timeout)]
    argv += extra_args
    return argv


def _link_pcap(program: str, workdir: Path) -> None:
    # The built-in uac_pcap plays "pcap/g711a.pcap" relative to the working
    # directory; Debian ships the file next to the program, in
    # <prefix>/share/sip-tester.
    shipped = Path(program).resolve().parent.parent / "share" / "sip-tester"
    if (shipped / "g711a.pcap").is_file():
        (workdir / "pcap").symlink_to(shipped, target_is_directory=True)


def _read_stats(path: Path) -> dict[str, str]:
    """The last row of SIPp's statistics file: the totals when it exited."""
    try:
        with path.open(newline="") as file:
            rows = [row for row in csv.reader(file, delimiter=";") if row]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _count(stats: Mapping[str, str], key: str) -> int:
    try:
        return int(stats.get(key, "0") or 0)
    except ValueError:
        return 0


def _sipp_result(child: _Child, exit_code: int, calls: int | None, elapsed: float) -> SippResult:
    stats = _read_stats(child.workdir / "stats.csv")
    errors = "\n".join(
        text for text in (_tail(child.workdir / "errors.log"), _tail(child.stderr_path)) if text
    )
    screen = _tail(child.workdir / "screen.log") or _tail(child.stdout_path)
    return SippResult(
        command=child.argv,
        exit_code=exit_code,
        calls_requested=calls,
        created=_count(stats, "TotalCallCreated"),
        successful=_count(stats, "SuccessfulCall(C)"),
        failed=_count(stats, "FailedCall(C)"),
        current=_count(stats, "CurrentCall"),
        retransmissions=_count(stats, "Retransmissions(C)"),
        timed_out="timed out after" in errors,
        elapsed=elapsed,
        stats=stats,
        errors_tail=errors,
        screen_tail=screen,
    )


async def run_sipp(
    scenario: str | os.PathLike[str],
    target: Address | None = None,
    *,
    transport: Transport = Transport.UDP,
    local: Address | None = None,
    calls: int = 1,
    rate: float | None = 100.0,
    rate_period: float | None = None,
    limit: int | None = None,
    lost: float | None = None,
    global_timeout: float = 10.0,
    timeout_error: bool = True,
    recv_timeout: float | None = None,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
    program: str | None = None,
) -> SippResult:
    """Run SIPp until it has made `calls` calls, and return what happened.

    `scenario` is a built-in name (``"uac"``, ``"uas"``, ``"uac_pcap"``...)
    or the path of an XML file (``SCENARIOS / "x.xml"``). `target` is the
    peer to call; `local` defaults to a free port on the target's loopback.
    `rate` calls per `rate_period` seconds (SIPp's -r, -rp), at most `limit`
    at once (-l), `lost` percent of packets dropped on purpose (-lost),
    `recv_timeout` seconds to wait for each expected message before a call
    fails (-recv_timeout).

    Bounded twice: SIPp's own `global_timeout` (-timeout, in whole seconds;
    with `timeout_error` its expiry is a fatal exit), and a hard deadline
    `EXIT_GRACE` seconds later, after which SIPp is killed and PeerError is
    raised. Failed calls are not an exception: check ``result.ok`` and put
    ``result.describe()`` in the assertion message. Files go to `workdir`
    when given (kept), else to a temporary directory (removed).
    """
    program = program or find_program("sipp", "sip-tester")
    if local is None:
        host = target.host if target is not None else "127.0.0.1"
        local = Address(host, free_port(host, "both"))
    work = _WorkDir(workdir, "sipp")
    try:
        argv = _sipp_argv(
            program,
            scenario,
            target,
            transport=transport,
            local=local,
            workdir=work.path,
            calls=calls,
            rate=rate,
            rate_period=rate_period,
            limit=limit,
            lost=lost,
            global_timeout=global_timeout,
            timeout_error=timeout_error,
            recv_timeout=recv_timeout,
            extra_args=extra_args,
        )
        if str(scenario) == "uac_pcap":
            _link_pcap(program, work.path)
        child = _Child("sipp", argv, work.path)
        started = time.monotonic()
        deadline = math.ceil(global_timeout) + EXIT_GRACE
        exit_code: int | None = None
        try:
            await child.start()
            with anyio.move_on_after(deadline):
                exit_code = await child.wait()
        finally:
            # Reaps SIPp on every path: done, past the deadline, or cancelled.
            await child.stop()
        if exit_code is None:
            raise PeerError(
                f"sipp did not exit within {deadline} s despite -timeout; killed\n" + child.report()
            )
        return _sipp_result(child, exit_code, calls, time.monotonic() - started)
    finally:
        work.cleanup()


class SippServer(_PeerContext):
    """A long-running SIPp, a ``uas`` by default, for the lifetime of a block.

    ::

        async with SippServer("uas") as uas:
            result = await run_sipp("uac", uas.address, calls=20)
        assert uas.result is not None and uas.result.failed == 0

    Entering waits until SIPp has bound its port (chosen at run time unless
    `port` is given). Leaving stops it and reaps it, also on cancellation;
    its :class:`SippResult` is then in ``result``.

    How it is stopped: SIGTERM by default, which SIPp obeys at once, writing
    its statistics and exiting with 97; calls still in the built-in uas's
    final 4-second timewait count as ``current``, not ``successful``. With
    ``graceful_stop=True`` it gets one SIGUSR1 instead (SIPp's "q" key: no
    new calls, running ones finish), which costs those 4 seconds. Never a
    second SIGUSR1: SIPp 3.6.1 then spins at full CPU and ignores even its
    own -timeout. After `stop_timeout` seconds the process group is killed.

    `calls` makes SIPp exit by itself after that many calls (see
    :meth:`wait`); `global_timeout` is a safety bound (-timeout) so that a leaked
    server still ends. Other arguments are those of :func:`run_sipp`.
    """

    def __init__(
        self,
        scenario: str | os.PathLike[str] = "uas",
        *,
        transport: Transport = Transport.UDP,
        host: str = "127.0.0.1",
        port: int | None = None,
        calls: int | None = None,
        lost: float | None = None,
        recv_timeout: float | None = None,
        global_timeout: float = 60.0,
        graceful_stop: bool = False,
        stop_timeout: float = STOP_TIMEOUT,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        program: str | None = None,
    ) -> None:
        _check_loopback(host)
        self.scenario = scenario
        self.transport = transport
        self.host = host
        self.port = port
        self.calls = calls
        self.lost = lost
        self.recv_timeout = recv_timeout
        self.global_timeout = global_timeout
        self.graceful_stop = graceful_stop
        self.stop_timeout = stop_timeout
        self.extra_args = tuple(extra_args)
        self.workdir = workdir
        self.program = program
        self.result: SippResult | None = None
        self._started = 0.0

    async def __aenter__(self) -> Self:
        program = self.program or find_program("sipp", "sip-tester")
        address = Address(self.host, self.port or free_port(self.host, "both"))
        work = _WorkDir(self.workdir, "sipp-server")
        argv = _sipp_argv(
            program,
            self.scenario,
            None,
            transport=self.transport,
            local=address,
            workdir=work.path,
            calls=self.calls,
            rate=None,
            rate_period=None,
            limit=None,
            lost=self.lost,
            global_timeout=self.global_timeout,
            timeout_error=False,
            recv_timeout=self.recv_timeout,
            extra_args=self.extra_args,
        )
        self._started = time.monotonic()
        await self._launch("sipp", argv, work, (address, _kinds(self.transport)))
        self._address = address
        return self

    def _collect(self, exit_code: int) -> SippResult:
        assert self._child is not None
        self.result = _sipp_result(
            self._child, exit_code, self.calls, time.monotonic() - self._started
        )
        return self.result

    async def wait(self) -> SippResult:
        """Wait for SIPp to exit by itself (after `calls` calls, or its timeout).

        Unbounded here: SIPp's -timeout bounds it; add ``anyio.fail_after``
        for a tighter limit.
        """
        assert self._child is not None
        return self._collect(await self._child.wait())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._child is not None
        assert self._workdir is not None
        first = signal.SIGUSR1 if self.graceful_stop else signal.SIGTERM
        try:
            exit_code = await self._child.stop(first, self.stop_timeout)
            self._collect(exit_code)
        finally:
            self._final_logs = self._child.report()
            self._workdir.cleanup()


# --------------------------------------------------------------------------
# Net::SIP
# --------------------------------------------------------------------------


def _printed_ready(child: _Child) -> bool:
    try:
        return child.stdout_path.read_text().startswith("READY ")
    except OSError:
        return False


class _NetSipPeer(_PeerContext):
    script: str = ""

    def __init__(
        self,
        *,
        transport: Transport,
        host: str,
        port: int | None,
        lifetime: float,
        debug: int | None,
        workdir: Path | None,
        program: str | None,
    ) -> None:
        if transport is Transport.TLS:
            raise ValueError("the Net::SIP peers here speak UDP and TCP only")
        _check_loopback(host)
        self.transport = transport
        self.host = host
        self.port = port
        self.lifetime = lifetime
        self.debug = debug
        self.workdir = workdir
        self.program = program

    def _script_args(self) -> list[str]:
        return []

    async def __aenter__(self) -> Self:
        perl = self.program or find_program("perl", "perl")
        address = Address(self.host, self.port or free_port(self.host, "both"))
        argv = [
            perl,
            str(SCENARIOS / self.script),
            "--proto", self.transport.value,
            "--addr", address.host,
            "--port", str(address.port),
            # Ends by itself if the harness is killed before it can stop it.
            "--timeout", f"{self.lifetime:g}",
            *self._script_args(),
        ]  # fmt: skip
        if self.debug is not None:
            argv.append(f"--debug={self.debug}")
        work = _WorkDir(self.workdir, "netsip")
        # The port shows the socket is bound; the READY line that the script
        # got through its setup and runs its event loop.
        await self._launch("netsip", argv, work, (address, _kinds(self.transport)), _printed_ready)
        self._address = address
        return self


class NetSipUas(_NetSipPeer):
    """A Net::SIP user agent server (``scenarios/netsip_uas.pl``).

    Answers INVITE with 200 OK and an SDP answer, BYE and OPTIONS with 200.
    Sends no RTP. ``debug`` (1-100) makes Net::SIP log to stderr, which
    :meth:`logs` shows. `lifetime` seconds bounds the script's own life.
    """

    script = "netsip_uas.pl"

    def __init__(
        self,
        *,
        transport: Transport = Transport.UDP,
        host: str = "127.0.0.1",
        port: int | None = None,
        lifetime: float = 60.0,
        debug: int | None = None,
        workdir: Path | None = None,
        program: str | None = None,
    ) -> None:
        super().__init__(
            transport=transport,
            host=host,
            port=port,
            lifetime=lifetime,
            debug=debug,
            workdir=workdir,
            program=program,
        )


class NetSipProxy(_NetSipPeer):
    """A Net::SIP stateless proxy (``scenarios/netsip_proxy.pl``).

    Forwards every request to `next_hop` over the same transport, whatever
    its Request-URI, and responses back along their Via headers.
    """

    script = "netsip_proxy.pl"

    def __init__(
        self,
        next_hop: Address,
        *,
        transport: Transport = Transport.UDP,
        host: str = "127.0.0.1",
        port: int | None = None,
        lifetime: float = 60.0,
        debug: int | None = None,
        workdir: Path | None = None,
        program: str | None = None,
    ) -> None:
        super().__init__(
            transport=transport,
            host=host,
            port=port,
            lifetime=lifetime,
            debug=debug,
            workdir=workdir,
            program=program,
        )
        self.next_hop = next_hop

    def _script_args(self) -> list[str]:
        return ["--next-hop", str(self.next_hop)]


# --------------------------------------------------------------------------
# Kamailio
# --------------------------------------------------------------------------

# What every configuration of the harness starts with: logs to stderr, only
# the listen addresses below (no aliases, no DNS lookups of them), UDP and TCP.
_KAMAILIO_HEAD: Final = """\
#!KAMAILIO
debug={debug}
log_stderror=yes
auto_aliases=no
dns=no
rev_dns=no
listen=udp:{listen}
listen=tcp:{listen}
children={children}
tcp_children={children}
"""

# Written by the trio-sip interop harness: a stateless forwarder, no modules,
# no database. Every request goes to one next hop over the transport it came
# in on; replies go back along their Via headers (core stateless reply
# forwarding).
_KAMAILIO_CFG: Final = (
    _KAMAILIO_HEAD
    + """
request_route {{
    if (proto == TCP) {{
        forward_tcp("{next_host}", {next_port});
    }} else {{
        forward_udp("{next_host}", {next_port});
    }}
    exit;
}}
"""
)


class KamailioProxy(_PeerContext):
    """Kamailio as a stateless proxy, forwarding everything to `next_hop`.

    Listens on UDP and TCP on the same loopback port and forwards each
    request over the transport it arrived on (``forward_udp`` /
    ``forward_tcp``), with no modules and no database. The configuration is
    written to the work directory; `children` worker processes per transport
    (raise it for benchmarks), `debug` is Kamailio's log level (stderr, see
    :meth:`logs`). Kamailio has no lifetime bound of its own: the harness
    stops it (SIGTERM, then SIGKILL to its process group) on exit.
    """

    def __init__(
        self,
        next_hop: Address,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        children: int = 1,
        debug: int = 1,
        shm_mb: int = 32,
        workdir: Path | None = None,
        program: str | None = None,
    ) -> None:
        _check_loopback(host)
        if Address(host, 1).family != next_hop.family:
            raise ValueError("Kamailio listens and forwards on one address family here")
        self.next_hop = next_hop
        self.host = host
        self.port = port
        self.children = children
        self.debug = debug
        self.shm_mb = shm_mb
        self.workdir = workdir
        self.program = program

    def config(self, listen: Address) -> str:
        """The kamailio.cfg text for listening on `listen`."""
        return _KAMAILIO_CFG.format(
            debug=self.debug,
            listen=listen,
            children=self.children,
            next_host=self.next_hop.bracketed_host,
            next_port=self.next_hop.port,
        )

    async def __aenter__(self) -> Self:
        program = self.program or find_program("kamailio", "kamailio")
        address = Address(self.host, self.port or free_port(self.host, "both"))
        work = _WorkDir(self.workdir, "kamailio")
        cfg = work.path / "kamailio.cfg"
        cfg.write_text(self.config(address))
        argv = [
            program,
            "-f", str(cfg),
            # -DD: stay in the foreground (not daemonized) but fork the
            # workers; -E: log to stderr, which goes to a file.
            "-DD", "-E",
            "-n", str(self.children), "-N", str(self.children),
            "-S",  # no SCTP
            # Runtime files and working directory in our own directory, not
            # in /var/run/kamailio (which needs root).
            "-Y", str(work.path), "-w", str(work.path),
            "-m", str(self.shm_mb), "-M", "4",
        ]  # fmt: skip
        await self._launch("kamailio", argv, work, (address, ("udp", "tcp")))
        self._address = address
        return self


# Memory only (db_mode 0); sl for the replies. Both listens are there because
# the runner waits for UDP and TCP to be bound. With a password, the auth
# check below comes first.
_KAMAILIO_REGISTRAR: Final = (
    _KAMAILIO_HEAD
    + """\
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", {min_expires})
{auth_modules}
request_route {{
    if (method == "REGISTER") {{
{auth_check}        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    sl_send_reply("405", "Method Not Allowed");
}}
"""
)

# Digest credentials for the To's domain, any user name; challenged with
# qop=auth (www_challenge flag 1).
_KAMAILIO_AUTH_CHECK: Final = """\
        if (!pv_www_authenticate("$td", "{password}", "0")) {{
            www_challenge("$td", "1");
            exit;
        }}
"""


class KamailioRegistrar(KamailioProxy):
    """Kamailio's ``registrar`` + ``usrloc`` modules, bindings in memory only.

    The harness's Kamailio runner with another configuration: the next hop
    it asks for is not used (nothing is forwarded). With ``password``,
    REGISTER needs digest credentials for it (``auth`` module, qop=auth;
    Kamailio's nonces are good for 300 s and may be used again meanwhile).
    ``min_expires`` is the registrar's shortest interval.
    """

    def __init__(
        self,
        *,
        children: int = 1,
        password: str = "",
        min_expires: int = 60,
        debug: int = 1,
        program: str | None = None,
    ) -> None:
        super().__init__(Address("127.0.0.1", 1), children=children, debug=debug, program=program)
        if '"' in password or "\\" in password:
            raise ValueError("the password goes into a quoted config string")
        self.password = password
        self.min_expires = min_expires

    def config(self, listen: Address) -> str:
        """A registrar answering REGISTER and 405 to anything else."""
        modules = check = ""
        if self.password:
            modules = 'loadmodule "pv.so"\nloadmodule "auth.so"\n'
            check = _KAMAILIO_AUTH_CHECK.format(password=self.password)
        return _KAMAILIO_REGISTRAR.format(
            listen=listen,
            children=self.children,
            debug=self.debug,
            min_expires=self.min_expires,
            auth_modules=modules,
            auth_check=check,
        )
