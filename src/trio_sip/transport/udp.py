"""The UDP leg: one datagram socket, a receive loop that never waits on handling."""

from __future__ import annotations

import socket

import anyio
from anyio.abc import UDPSocket

from ..errors import DeliveryFailure
from .leg import Address, Leg, PacketHandler, TransportFailure, map_os_error

__all__ = ["UDPLeg", "MAX_DATAGRAM"]

#: The largest UDP payload (RFC 3261 section 18.1.1 allows up to 65,535 bytes).
MAX_DATAGRAM = 65535


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
        if udp is None:
            raise RuntimeError("leg is not bound")
        stats = self.stats
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

    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        """Send one datagram; try the non-blocking path first (no task switch)."""
        raw = self._raw
        if raw is None or self._udp is None:
            raise TransportFailure(DeliveryFailure.TRANSPORT, "leg is closed")
        if len(data) > MAX_DATAGRAM:
            raise TransportFailure(
                DeliveryFailure.TRANSPORT, f"{len(data)} bytes do not fit a datagram"
            )
        try:
            try:
                raw.sendto(data, dst)
            except BlockingIOError:
                await self._udp.sendto(data, dst[0], dst[1])
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
