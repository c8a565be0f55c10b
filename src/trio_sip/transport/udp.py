"""The UDP leg: one datagram socket, a receive loop that never waits on handling."""

from __future__ import annotations

import contextlib
import logging
import socket

import anyio
import anyio.lowlevel

from ..errors import DeliveryFailure
from .leg import Address, Leg, PacketHandler, TransportFailure, map_os_error
from .readable import Drain, ReadLoop

__all__ = ["UDPLeg", "MAX_DATAGRAM"]

log = logging.getLogger("trio_sip.transport")

#: The largest UDP payload (RFC 3261 section 18.1.1 allows up to 65,535 bytes).
MAX_DATAGRAM = 65535
#: Datagrams read without waiting after each wait (see :meth:`UDPLeg.serve`).
DRAIN_BATCH = 64
#: Receive buffer asked of the kernel (capped by it at net.core.rmem_max).
RECEIVE_BUFFER = 1 << 20

# socket.SOCK_NONBLOCK exists on Linux only; elsewhere setblocking() does it.
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)


class UDPLeg(Leg):
    """SIP over UDP (RFC 3261 section 18, unreliable: the Dispatcher retransmits).

    The leg drives its non-blocking socket itself: it waits for readiness
    with :func:`anyio.wait_readable` (a
    :class:`~trio_sip.transport.readable.ReadLoop`) and then reads what the
    kernel has queued, a bounded batch at a time. One scheduler round per
    batch, not per datagram, on both backends; and no second buffer in
    user space (anyio's
    datagram socket on asyncio keeps only the newest 100 unread datagrams and
    drops older ones silently, where the kernel's buffer is larger and counts
    its drops).
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = ("_raw", "_reader", "_waited_on", "receive_buffer")

    proto = "udp"
    reliable = False

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        advertise: str | None = None,
        receive_buffer: int | None = RECEIVE_BUFFER,
    ) -> None:
        super().__init__(host, port, sock=sock, advertise=advertise)
        self._raw: socket.socket | None = None
        # What serve() reads with, while it runs: closing stops it first.
        self._reader: ReadLoop | None = None
        # Whether send() ever waited for room: only then must closing tell
        # the event loop. An RTP socket read by a multiplexer never waits,
        # and skips that (a few system calls a call).
        self._waited_on = False
        #: Receive buffer asked of the kernel at bind (None: the system's
        #: default, enough for a stream of RTP).
        self.receive_buffer = receive_buffer

    async def bind(self) -> None:
        """Bind the datagram socket. SO_REUSEADDR is never set, so a port that
        another socket holds fails loudly instead of being shared."""
        self.bind_nowait()
        await anyio.lowlevel.checkpoint()

    def bind_nowait(self) -> None:
        """:meth:`bind` without the checkpoint: binding a datagram socket never
        waits (for a caller on the per-packet path, an RTP session opened
        as an INVITE comes in)."""
        if self._raw is not None:
            return
        sock = self._sock
        if sock is None:
            # Non-blocking from the start where the system can (Linux): one
            # system call fewer per socket, and a call opens two for RTP.
            sock = socket.socket(self.family, socket.SOCK_DGRAM | _SOCK_NONBLOCK)
            try:
                if self.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise map_os_error(exc, f"cannot bind udp {self.host}:{self.port}") from exc
        if sock.gettimeout() != 0.0:
            sock.setblocking(False)
        wanted = self.receive_buffer
        if wanted is not None:
            self._grow_receive_buffer(sock, wanted)
        self._raw = sock
        if self.port == 0 or self._sock is not None:
            self.port = sock.getsockname()[1]  # what the system chose (or a given socket's)

    def _grow_receive_buffer(self, sock: socket.socket, wanted: int) -> None:
        # Room for a burst: the kernel's default holds about a hundred small
        # datagrams (it counts buffer overhead too), a pause of the process
        # (a garbage collection) at a thousand calls a second overflows it.
        with contextlib.suppress(OSError):
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= wanted:
                return
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            # Linux caps the value at net.core.rmem_max without an error (and
            # reports twice what it keeps, for its bookkeeping); a stock
            # system keeps a fifth of RECEIVE_BUFFER. Logged, so that drops
            # under load are not a mystery; as information, not a warning:
            # a one-shot client (an OPTIONS ping) needs no burst room.
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if granted < wanted:
                log.info(
                    "udp %s:%d: the system gave a receive buffer of %d bytes, not %d;"
                    " bursts may be dropped (raise net.core.rmem_max on Linux)",
                    self.host,
                    sock.getsockname()[1],
                    granted,
                    wanted,
                )

    async def serve(self, handler: PacketHandler) -> None:
        """Receive datagrams until the leg closes; each goes to ``handler`` at once."""
        sock = self._raw
        if sock is None:
            raise RuntimeError("leg is not bound")
        stats = self.stats
        recvfrom = sock.recvfrom

        def drain() -> bool:
            for _ in range(DRAIN_BATCH):
                try:
                    data, addr = recvfrom(MAX_DATAGRAM)
                except BlockingIOError:
                    return True
                except OSError:
                    if self._raw is None:
                        return False
                    # An ICMP error from an earlier send surfaces here on
                    # some systems; the socket itself is still usable.
                    continue
                stats.packets_in += 1
                stats.bytes_in += len(data)
                handler(data, self, (addr[0], addr[1]))
            return self._raw is not None

        await self._read(sock.fileno(), drain)

    async def _read(self, fd: int, drain: Drain) -> None:
        # drain() on each readiness of fd, until it says stop or the leg closes.
        reader = self._reader = ReadLoop(fd, drain)
        try:
            await reader.serve()
        finally:
            if self._reader is reader:
                self._reader = None

    def send_nowait(self, data: bytes, dst: Address) -> bool:
        """Send one datagram if the kernel takes it at once (it nearly always does).

        Returns False, having sent nothing, when the socket buffer is full:
        then :meth:`send` waits for room. Raises :class:`TransportFailure` like
        :meth:`send`. For callers on the per-packet path (a stateless proxy,
        an Endpoint's answers), which have no task to wait in.
        """
        raw = self._raw
        if raw is None:
            raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
        if len(data) > MAX_DATAGRAM:
            raise TransportFailure(
                DeliveryFailure.TRANSPORT, f"{len(data)} bytes do not fit a datagram"
            )
        try:
            raw.sendto(data, dst)
        except BlockingIOError:
            return False
        except OSError as exc:
            self.stats.send_errors += 1
            raise map_os_error(exc, f"udp send to {dst[0]}:{dst[1]}") from exc
        stats = self.stats
        stats.packets_out += 1
        stats.bytes_out += len(data)
        return True

    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        """Send one datagram, waiting for room in the socket buffer when it is full.

        A datagram the kernel takes at once is sent without a task switch: the
        Dispatcher registers a retransmission right after the send, and an
        answer read in between would find nothing to stop.
        """
        while not self.send_nowait(data, dst):
            raw = self._raw
            if raw is None:
                raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
            self._waited_on = True
            try:
                await anyio.wait_writable(raw)
            except (anyio.ClosedResourceError, OSError, ValueError) as exc:
                raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed") from exc

    @property
    def raw_socket(self) -> socket.socket | None:
        """The bound non-blocking socket (None before :meth:`bind` and after closing).

        For a reader other than :meth:`serve`: a
        :class:`~trio_sip.transport.DatagramMultiplexer`. :meth:`close`
        tells the event loop the socket is closing only when :meth:`serve`
        or :meth:`send` waited on it; a reader that waits on it through the
        event loop itself calls :func:`anyio.notify_closing` first.
        """
        return self._raw

    def close(self) -> None:
        """Close the socket now; a task waiting on it wakes and ends. Call it from a task."""
        raw, self._raw = self._raw, None
        if raw is not None:
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.stop()
            if self._waited_on and raw.fileno() != -1:
                anyio.notify_closing(raw)
            raw.close()

    async def aclose(self) -> None:
        """Close the socket; a task waiting on it wakes and ends."""
        self.close()
        await anyio.lowlevel.checkpoint()
