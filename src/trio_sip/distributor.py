"""The distributor of ``trio-sip answer|proxy|registrar --workers N``: one socket, N processes.

A Python process uses one core. To answer (or forward) calls on more, the
distributor binds the SIP socket, starts ``N`` worker processes (the same
command, each with its own event loop, UserAgent and RTP sockets), and then
only reads: each datagram goes to the worker its Call-ID picks
(:func:`~trio_sip.transport.shard.shard_of`), through that worker's inbox.
The workers send on the shared socket themselves. Reading, picking and
handing over cost a few microseconds a datagram, against the best part of a
millisecond a call spends in its worker.

The distributor is a plain blocking loop (no event loop: it waits for its
sockets and never for anything else). SIGINT or SIGTERM stops it: it passes
SIGTERM on to the workers and keeps handing datagrams over while they
finish (the answers to their BYEs and un-REGISTER), each printing its own
statistics; then it exits with status 0 if all went well, 1 if not. A
second signal is passed on too: the workers then stop waiting for answers.
A worker that ends early stops the whole.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from .transport.shard import frame, shard_of
from .transport.udp import DRAIN_BATCH, MAX_DATAGRAM

__all__ = ["DistributorStatistics", "WorkerPlace", "run_distributor"]

#: How long the workers have to start, and then to finish once told to stop.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
#: Room for a worker's backlog in its inbox (the kernel may give less).
INBOX_BUFFER = 4 << 20
#: What a worker writes to its inbox once it serves.
READY = b"ready"


@dataclass(slots=True)
class DistributorStatistics:
    """What the distributor did with the datagrams it read."""

    received: int = 0
    #: Handed to a worker.
    forwarded: int = 0
    #: Lost because the worker's inbox was full (the peer retransmits).
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class WorkerPlace:
    """Who a worker is: ``shard`` of ``shards``, and the descriptors it inherits.

    Given to the worker on its command line as ``--worker K/N:U,I``
    (:meth:`parse`, :func:`str`): ``U`` is the shared SIP socket, ``I`` its
    inbox.
    """

    shard: int
    shards: int
    udp_fd: int
    inbox_fd: int

    def __str__(self) -> str:
        return f"{self.shard}/{self.shards}:{self.udp_fd},{self.inbox_fd}"

    @classmethod
    def parse(cls, spec: str) -> WorkerPlace:
        """The place of ``K/N:U,I``. Raises ValueError when malformed."""
        place, _, fds = spec.partition(":")
        shard, _, shards = place.partition("/")
        udp_fd, _, inbox_fd = fds.partition(",")
        try:
            parsed = cls(int(shard), int(shards), int(udp_fd), int(inbox_fd))
        except ValueError:
            parsed = None
        if parsed is None or not 0 <= parsed.shard < parsed.shards:
            raise ValueError(f"not a worker place: {spec!r}")
        return parsed

    def sockets(self) -> tuple[socket.socket, socket.socket]:
        """The shared SIP socket and the inbox, made from the inherited descriptors."""
        return socket.socket(fileno=self.udp_fd), socket.socket(fileno=self.inbox_fd)


def _note(signum: int, frame_: FrameType | None) -> None:
    # The signal's number reaches the loop through the wake-up descriptor;
    # raising here could land between a datagram's hand-over and its count.
    pass


def run_distributor(
    sock: socket.socket, worker_argv: Sequence[str], workers: int, *, listening: str = ""
) -> int:
    """Serve ``sock`` with ``workers`` processes until SIGINT or SIGTERM; the exit status.

    ``sock`` is a bound UDP socket, its receive buffer sized by the caller
    (a :class:`~trio_sip.transport.UDPLeg`'s is). Worker ``i`` runs
    ``worker_argv`` followed by ``--worker i/workers:U,I`` (a
    :class:`WorkerPlace`; ``U`` and ``I`` are the descriptors of ``sock`` and
    of its inbox, which it inherits). Once every worker has written
    :data:`READY` to its inbox, ``listening on <listening>`` is printed.
    """
    sock.setblocking(False)
    inboxes: list[socket.socket] = []
    procs: list[subprocess.Popen[bytes]] = []
    stats = DistributorStatistics()
    ok = hurried = False
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    previous = {sig: signal.signal(sig, _note) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_wakeup = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
    try:
        for shard in range(workers):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            for sk, opt in ((ours, socket.SO_SNDBUF), (theirs, socket.SO_RCVBUF)):
                try:
                    sk.setsockopt(socket.SOL_SOCKET, opt, INBOX_BUFFER)
                except OSError:
                    pass
            with theirs:
                place = WorkerPlace(shard, workers, sock.fileno(), theirs.fileno())
                argv = [*worker_argv, "--worker", str(place)]
                # Its own session: a terminal's Ctrl-C reaches the distributor
                # only, which then stops the workers in order.
                procs.append(
                    subprocess.Popen(
                        argv, pass_fds=(place.udp_fd, place.inbox_fd), start_new_session=True
                    )
                )
            inboxes.append(ours)
        ok, hurried = _forward(sock, inboxes, procs, stats, wake_read, listening)
    finally:
        # The workers have ended (or, after an error above, are stopped
        # now): their exit statuses.
        all_zero = _stop_workers(procs, hurried)
        signal.set_wakeup_fd(previous_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sk in (*inboxes, wake_read, wake_write):
            sk.close()
    print(
        f"distributor: workers={workers} received={stats.received}"
        f" forwarded={stats.forwarded} dropped={stats.dropped}",
        flush=True,
    )
    # 1 for any failure: a worker killed by a signal has no status of its own.
    return 0 if ok and all_zero else 1


def _forward(
    sock: socket.socket,
    inboxes: list[socket.socket],
    procs: list[subprocess.Popen[bytes]],
    stats: DistributorStatistics,
    wake: socket.socket,
    listening: str,
) -> tuple[bool, bool]:
    """Hand datagrams over until every worker has ended; whether all went well,
    and whether a second signal was passed on.

    The workers start (each writes READY to its inbox once it serves;
    ``listening on`` is printed when all have), serve, and on a signal or
    the end of one of them are told to stop (SIGTERM, then SIGKILL after
    STOP_TIMEOUT); a second signal is passed on (SIGTERM again: stop now).
    Datagrams are handed over all along: a starting worker may need
    answers (the first one registers before it is ready), and so does a
    stopping one (its BYEs, its un-REGISTER).
    """
    for inbox in inboxes:
        inbox.setblocking(False)
    sends = [inbox.send for inbox in inboxes]
    shards = len(sends)
    recvfrom = sock.recvfrom
    poller = select.poll()
    for fd in (sock.fileno(), wake.fileno()):
        poller.register(fd, select.POLLIN)
    # The inboxes of the workers not ready yet.
    starting = {inbox.fileno(): inbox for inbox in inboxes}
    for fd in starting:
        poller.register(fd, select.POLLIN)
    poll = poller.poll
    sock_fd, wake_fd = sock.fileno(), wake.fileno()
    ok, stopping, hurried = True, False, False
    deadline = time.monotonic() + START_TIMEOUT

    def stop(failure: str | None = None) -> None:
        nonlocal ok, stopping, deadline
        if failure is not None:
            print(f"trio-sip: {failure}", file=sys.stderr)
            ok = False
        stopping = True
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    while True:
        events = poll(100 if stopping or starting else 500)
        readable = False
        for fd, _ in events:
            if fd == sock_fd:
                readable = True
            elif fd == wake_fd:
                with contextlib.suppress(BlockingIOError):
                    while wake.recv(64):  # the signals' numbers: read them all
                        pass
                if not stopping:
                    stop()
                elif not hurried:
                    # A second signal: pass it on, and the workers stop
                    # waiting for the answers to their BYEs.
                    hurried = True
                    for proc in procs:
                        if proc.poll() is None:
                            proc.send_signal(signal.SIGTERM)
            else:
                inbox = starting.pop(fd)
                poller.unregister(fd)
                try:
                    said = inbox.recv(64)
                except OSError:
                    said = b""
                if stopping:
                    continue
                if said != READY:
                    stop("a worker ended while starting")
                elif not starting:
                    print(f"listening on {listening}", flush=True)
        if stopping:
            if all(proc.poll() is not None for proc in procs):
                return ok, hurried
            if time.monotonic() > deadline:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
                return ok, hurried
        elif not events or starting:
            # Quiet, or starting: the moment to see that every worker still runs.
            if any(proc.poll() is not None for proc in procs):
                stop("a worker ended while starting" if starting else "a worker ended; stopping")
            elif starting and time.monotonic() > deadline:
                stop("a worker did not start in time")
        if not readable:
            continue
        for _ in range(DRAIN_BATCH):
            try:
                data, source = recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:
                continue  # an ICMP error of an earlier send; the socket is fine
            stats.received += 1
            source = (source[0], source[1])
            try:
                # A datagram and its address line always fit MAX_FRAME.
                sends[shard_of(data, source, shards)](frame(source, data))
            except BlockingIOError:
                stats.dropped += 1
            except OSError:
                # The worker's end is gone: it ended (or crashed).
                stats.dropped += 1
                if not stopping:
                    stop("a worker ended; stopping")
            else:
                stats.forwarded += 1


def _stop_workers(procs: list[subprocess.Popen[bytes]], hurried: bool) -> bool:
    # Whether every worker ended well. One that was ending already when the
    # second signal came may end by it (its handler gone): as was asked.
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    codes: list[int] = []
    for proc in procs:
        try:
            codes.append(proc.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return all(code == 0 or (hurried and code == -signal.SIGTERM) for code in codes)
