"""The UDP leg: one datagram socket, a receive loop that never waits on handling."""

from __future__ import annotations

import socket

import anyio
import sniffio
from anyio.abc import UDPSocket

from ..errors import DeliveryFailure
from .leg import Address, Leg, PacketHandler, TransportFailure, map_os_error

__all__ = ["UDPLeg", "MAX_DATAGRAM"]

#: The largest UDP payload (RFC 3261 section 18.1.1 allows up to 65,535 bytes).
MAX_DATAGRAM = 65535
#: Datagrams read without waiting after each wait (see :meth:`UDPLeg.serve`).
DRAIN_BATCH = 64


class UDPLeg(Leg):
    """SIP over UDP (RFC 3261 section 18, unreliable: the Dispatcher retransmits)."""

    proto = "udp"
    reliable = False

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        advertise: str | None = None,
    ) -> None:
        super().__init__(host, port, sock=sock, advertise=advertise)
        self._udp: UDPSocket | None = None
        self._raw: socket.socket | None = None

    async def bind(self) -> None:
        """Bind the datagram socket. SO_REUSEADDR is never set, so a port that
        another socket holds fails loudly instead of being shared."""
        if self._udp is not None:
            return
        sock = self._sock
        if sock is None:
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                if self.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise map_os_error(exc, f"cannot bind udp {self.host}:{self.port}") from exc
        sock.setblocking(False)
        self._udp = await UDPSocket.from_socket(sock)
        # Sending goes straight to the socket when the kernel takes the
        # datagram at once (it nearly always does): no task switch, on any backend.
        self._raw = sock
        self.port = sock.getsockname()[1]

    async def serve(self, handler: PacketHandler) -> None:
        """Receive datagrams forever; each goes to ``handler`` at once."""
        udp = self._udp
        raw = self._raw
        if udp is None or raw is None:
            raise RuntimeError("leg is not bound")
        stats = self.stats
        # On trio every anyio receive passes through the scheduler (a
        # checkpoint), which costs about as much as handling a datagram.
        # What is already queued is read straight from the socket instead, a
        # bounded batch at a time so that other tasks get their turn. On
        # asyncio the transport reads the socket itself; reading it here too
        # would reorder datagrams, so the transport stays the only reader.
        drain = sniffio.current_async_library() == "trio"
        while True:
            try:
                data, addr = await udp.receive()
            except (anyio.BrokenResourceError, OSError):
                # An ICMP error from an earlier send surfaces here on some
                # backends; the datagram socket itself is still usable.
                await anyio.lowlevel.checkpoint()
                continue
            except anyio.ClosedResourceError:
                return
            stats.packets_in += 1
            stats.bytes_in += len(data)
            handler(data, self, (addr[0], addr[1]))
            if not drain:
                continue
            for _ in range(DRAIN_BATCH):
                try:
                    data, addr = raw.recvfrom(MAX_DATAGRAM)
                except OSError:
                    # Nothing queued (BlockingIOError), an ICMP error or a
                    # closed socket: the next receive sorts it out.
                    break
                stats.packets_in += 1
                stats.bytes_in += len(data)
                handler(data, self, (addr[0], addr[1]))

    def send_nowait(self, data: bytes, dst: Address) -> bool:
        """Send one datagram if the kernel takes it at once (it nearly always does).

        Returns False, having sent nothing, when the socket buffer is full:
        then :meth:`send` waits for room. Raises :class:`TransportFailure` like
        :meth:`send`. For callers on the per-packet path (a stateless proxy),
        which have no task to wait in.
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
        """Send one datagram; try the non-blocking path first (no task switch)."""
        if self.send_nowait(data, dst):
            return
        udp = self._udp
        if udp is None:
            raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
        try:
            await udp.sendto(data, dst[0], dst[1])
        except (OSError, anyio.BrokenResourceError) as exc:
            self.stats.send_errors += 1
            if isinstance(exc, OSError):
                raise map_os_error(exc, f"udp send to {dst[0]}:{dst[1]}") from exc
            raise TransportFailure(DeliveryFailure.UNREACHABLE, str(exc)) from exc
        self.stats.packets_out += 1
        self.stats.bytes_out += len(data)

    async def aclose(self) -> None:
        """Close the socket."""
        if self._udp is not None:
            await self._udp.aclose()
            self._udp = None
            self._raw = None
