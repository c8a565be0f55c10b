"""The distributor of ``trio-sip answer --workers N``: one UDP socket, N processes.

A Python process uses one core. To answer calls on more, the distributor
binds the SIP socket, starts ``N`` worker processes (the same command,
each with its own event loop, UserAgent and RTP sockets), and then only
reads: each datagram goes to the worker its Call-ID picks
(:func:`~trio_sip.transport.shard.shard_of`), through that worker's inbox.
The workers send on the shared socket themselves. Reading, picking and
handing over cost a few microseconds a datagram, against the best part of a
millisecond a call spends in its worker.

The distributor is a plain blocking loop (no event loop: it waits for one
socket and never for anything else). SIGINT or SIGTERM stops it: it passes
SIGTERM on to the workers, waits for them to finish (each prints its own
statistics), and exits with status 0 if all went well, 1 if not. A worker
that ends early stops the whole.
"""

from __future__ import annotations

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

__all__ = ["DistributorStatistics", "run_distributor"]

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
    ``worker_argv`` followed by ``--worker-fds U,I``: the descriptors of
    ``sock`` and of its inbox, which it inherits. Once every worker serves,
    ``listening on <listening>`` is printed.
    """
    sock.setblocking(False)
    inboxes: list[socket.socket] = []
    procs: list[subprocess.Popen[bytes]] = []
    stats = DistributorStatistics()
    ok = False
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    previous = {sig: signal.signal(sig, _note) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_wakeup = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
    try:
        for _ in range(workers):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            for sk, opt in ((ours, socket.SO_SNDBUF), (theirs, socket.SO_RCVBUF)):
                try:
                    sk.setsockopt(socket.SOL_SOCKET, opt, INBOX_BUFFER)
                except OSError:
                    pass
            with theirs:
                fds = (sock.fileno(), theirs.fileno())
                argv = [*worker_argv, "--worker-fds", f"{fds[0]},{fds[1]}"]
                # Its own session: a terminal's Ctrl-C reaches the distributor
                # only, which then stops the workers in order.
                procs.append(subprocess.Popen(argv, pass_fds=fds, start_new_session=True))
            inboxes.append(ours)
        started = _wait_ready(inboxes, procs, wake_read)
        if started is None:
            ok = True  # stopped while they started
        elif started:
            print(f"listening on {listening}", flush=True)
            ok = _forward(sock, inboxes, procs, stats, wake_read)
    finally:
        # Signals now only wake nobody: a second Ctrl-C must not leave the
        # workers behind (they get STOP_TIMEOUT to finish, then are killed).
        all_zero = _stop_workers(procs) == 0
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


def _wait_ready(
    inboxes: list[socket.socket], procs: list[subprocess.Popen[bytes]], wake: socket.socket
) -> bool | None:
    # Reading starts once every worker serves: until then datagrams wait in
    # the SIP socket, not in an inbox that nobody reads. None: a signal came.
    waiting = {inbox.fileno(): (inbox, proc) for inbox, proc in zip(inboxes, procs, strict=True)}
    deadline = time.monotonic() + START_TIMEOUT
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            print("trio-sip: a worker did not start in time", file=sys.stderr)
            return False
        ready, _, _ = select.select([wake.fileno(), *waiting], [], [], min(left, 0.5))
        if wake.fileno() in ready:
            return None
        for fd in ready:
            inbox, _ = waiting.pop(fd)
            if inbox.recv(64) != READY:
                print("trio-sip: a worker ended while starting", file=sys.stderr)
                return False
        if any(proc.poll() is not None for _, proc in waiting.values()):
            print("trio-sip: a worker ended while starting", file=sys.stderr)
            return False
    return True


def _forward(
    sock: socket.socket,
    inboxes: list[socket.socket],
    procs: list[subprocess.Popen[bytes]],
    stats: DistributorStatistics,
    wake: socket.socket,
) -> bool:
    # Until a signal (True) or a worker's end (False).
    for inbox in inboxes:
        inbox.setblocking(False)
    sends = [inbox.send for inbox in inboxes]
    shards = len(sends)
    recvfrom = sock.recvfrom
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake, select.POLLIN)
    poll = poller.poll
    wake_fd = wake.fileno()
    while True:
        events = poll(500)
        if not events:
            # Quiet: the moment to see that every worker still runs.
            if any(proc.poll() is not None for proc in procs):
                print("trio-sip: a worker ended; stopping", file=sys.stderr)
                return False
            continue
        if any(fd == wake_fd for fd, _ in events):
            return True
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
                print("trio-sip: a worker ended; stopping", file=sys.stderr)
                return False
            else:
                stats.forwarded += 1


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> int:
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
    return next((c for c in codes if c != 0), 0)


def worker_sockets(spec: str) -> tuple[socket.socket, socket.socket]:
    """The shared SIP socket and the inbox of ``--worker-fds U,I``."""
    udp_fd, inbox_fd = (int(part) for part in spec.split(","))
    return socket.socket(fileno=udp_fd), socket.socket(fileno=inbox_fd)
