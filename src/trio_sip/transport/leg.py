"""Legs: the local SIP addresses a Dispatcher sends and receives on.

A leg is one transport (udp, tcp or tls) bound to one local address and port.
It knows how to send bytes to a peer, runs a receive loop that hands every
packet to the Dispatcher, adds its Via to outgoing requests and recognises its
own Via on responses. Backend exceptions are translated into
:class:`~trio_sip.errors.TransportError` here, at the I/O boundary.
"""

from __future__ import annotations

import abc
import errno
import functools
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from ..errors import DeliveryFailure, TransportError
from ..message import URI, Message, Params, Request, Response, Via, new_branch
from ..message.uri import format_host

__all__ = [
    "Address",
    "Leg",
    "LegStatistics",
    "PacketHandler",
    "parse_leg_spec",
    "format_address",
    "parse_address",
    "TransportFailure",
]

#: A socket address: (IP literal, port). IPv6 without brackets.
Address = tuple[str, int]

#: What a leg calls for each packet: raw bytes (datagrams) or a framed message
#: (streams), the leg, and the sender's address. It must not block.
PacketHandler = Callable[["bytes | Message", "Leg", Address], None]

#: Protocols a leg may speak, with the Via transport token of each.
VIA_TRANSPORT: Final = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}


class TransportFailure(TransportError):
    """A send failed; ``reason`` says how (refused, unreachable, TLS ...)."""

    def __init__(self, reason: DeliveryFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def map_os_error(exc: OSError, what: str) -> TransportFailure:
    """The one place where socket errors become trio-sip errors."""
    code = exc.errno
    cause = exc.__cause__
    if code is None and cause is not None:
        # anyio.connect_tcp reports "all connection attempts failed" with the
        # individual error (or a group of them) as the cause.
        causes = cause.exceptions if isinstance(cause, BaseExceptionGroup) else (cause,)
        errors = [e for e in causes if isinstance(e, OSError)]
        if errors:
            code = errors[0].errno
            exc = errors[0]
    if code == errno.ECONNREFUSED:
        reason = DeliveryFailure.CONNECTION_REFUSED
    elif code in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        reason = DeliveryFailure.UNREACHABLE
    else:
        reason = DeliveryFailure.TRANSPORT
    return TransportFailure(reason, f"{what}: {exc.strerror or exc}")


def parse_address(text: str, default_port: int = 5060) -> Address:
    """``"host:port"``, ``"[v6]:port"`` or a bare host -> ``(host, port)``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if text.count(":") > 1:  # a bare IPv6 address
        return text, default_port
    host, colon, port_text = text.partition(":")
    return host, int(port_text) if colon else default_port


def format_address(addr: Address) -> str:
    """``(host, port)`` -> ``"host:port"`` with IPv6 in brackets."""
    return f"{format_host(addr[0])}:{addr[1]}"


@functools.lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    """True for an IPv4 or IPv6 address (not a host name).

    Cached: ipaddress parsing costs more than the rest of a route lookup, and
    the same few hosts come back on every packet.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal, else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def parse_leg_spec(spec: str) -> tuple[str, str, int]:
    """``"udp:127.0.0.1:5060"`` / ``"tcp:[::1]:0"`` / ``"tls:0.0.0.0"`` -> (proto, host, port).

    The protocol defaults to udp and the port to 5060 (5061 for tls).
    """
    proto, colon, rest = spec.partition(":")
    if proto.lower() not in VIA_TRANSPORT:
        proto, rest = "udp", spec
    else:
        proto = proto.lower()
        if not colon:
            raise ValueError(f"leg spec {spec!r} has no address")
    default = 5061 if proto == "tls" else 5060
    host, port = parse_address(rest, default)
    if not is_ip_literal(host):
        raise ValueError(f"leg address must be an IP address, not {host!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"bad port in leg spec {spec!r}")
    return proto, host, port


@dataclass(slots=True)
class LegStatistics:
    """Counters of one leg."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    send_errors: int = 0
    connections: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Leg(abc.ABC):
    """One local SIP address: a transport bound to an IP address and port.

    Subclasses: :class:`~trio_sip.transport.UDPLeg`,
    :class:`~trio_sip.transport.TCPLeg`, :class:`~trio_sip.transport.TLSLeg`.
    A leg is created unbound; :meth:`bind` (done by the Dispatcher when the
    leg is added) opens its socket, and ``port`` 0 becomes the ephemeral port
    the system chose.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = (
        "_route_cache",
        "_sock",
        "_via_prefix",
        "advertise",
        "family",
        "host",
        "peer",
        "port",
        "stats",
    )

    proto: ClassVar[str]
    #: Streams are reliable: nothing is retransmitted over them (RFC 3261 17).
    reliable: ClassVar[bool]

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        advertise: str | None = None,
    ) -> None:
        #: For a leg made from a connected socket: the only peer it reaches.
        self.peer: Address | None = None
        if sock is not None:
            host, port = sock.getsockname()[:2]
            try:
                peer = sock.getpeername()
            except OSError:  # not connected: any peer
                pass
            else:
                self.peer = (str(peer[0]), int(peer[1]))
        if not is_ip_literal(host):
            raise ValueError(f"leg address must be an IP address, not {host!r}")
        self.host: str = host
        self.port: int = port
        self.family = family_of(host)
        self._sock = sock
        #: Host (and optional port) to put in Via and Contact instead of the
        #: bound address, e.g. a public address in front of a NAT.
        self.advertise = advertise
        self.stats = LegStatistics()
        # Made by the first lookup: legs used for RTP never need one.
        self._route_cache: dict[str, str] | None = None
        self._via_prefix: tuple[int, str] | None = None

    @classmethod
    def create(cls, spec: Leg | str | Mapping[str, Any] | socket.socket) -> Leg:
        """A leg from a Leg, a spec string, a dict, or an already bound socket.

        Dict keys: ``proto``, ``addr`` (or ``host``), ``port`` and any keyword
        of the leg class (``advertise``, TLS options ...).
        """
        from .stream import TCPLeg, TLSLeg
        from .udp import UDPLeg

        classes: dict[str, type[Leg]] = {"udp": UDPLeg, "tcp": TCPLeg, "tls": TLSLeg}
        if isinstance(spec, Leg):
            return spec
        if isinstance(spec, str):
            proto, host, port = parse_leg_spec(spec)
            return classes[proto](host, port)
        if isinstance(spec, socket.socket):
            proto = "udp" if spec.type == socket.SOCK_DGRAM else "tcp"
            return classes[proto](sock=spec)
        options = dict(spec)
        proto = str(options.pop("proto", "udp")).lower()
        host = str(options.pop("addr", options.pop("host", "0.0.0.0")))
        port = int(options.pop("port", 5061 if proto == "tls" else 5060))
        if proto not in classes:
            raise ValueError(f"unknown leg protocol {proto!r}")
        return classes[proto](host, port, **options)

    # ----- identity -----------------------------------------------------------------

    @property
    def address(self) -> Address:
        """The bound ``(host, port)``."""
        return self.host, self.port

    def _sent_by_host(self, dst: Address | None = None) -> str:
        if self.advertise:
            return self.advertise
        if self.host not in ("0.0.0.0", "::"):
            return format_host(self.host)
        # Bound to every interface: name the one that routes to the peer.
        return format_host(self._local_address_towards(dst))

    def _local_address_towards(self, dst: Address | None) -> str:
        if dst is None:
            return "127.0.0.1" if self.family == socket.AF_INET else "::1"
        cache = self._route_cache
        if cache is None:
            cache = self._route_cache = {}
        cached = cache.get(dst[0])
        if cached is not None:
            return cached
        probe = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            probe.connect((dst[0], dst[1] or 9))  # no packet is sent by connect()
            local: str = probe.getsockname()[0]
        except OSError:
            local = "127.0.0.1" if self.family == socket.AF_INET else "::1"
        finally:
            probe.close()
        if len(cache) < 1024:
            cache[dst[0]] = local
        return local

    def sent_by(self, dst: Address | None = None) -> str:
        """``host:port`` this leg puts in Via sent-by (and Contact)."""
        host = self._sent_by_host(dst)
        if self.advertise and ":" in self.advertise.strip("[]").split("]")[-1]:
            return host  # advertise carried its own port
        return f"{host}:{self.port}"

    @property
    def via_transport(self) -> str:
        """The Via transport token: UDP, TCP or TLS."""
        return VIA_TRANSPORT[self.proto]

    def contact_uri(self, user: str | None = None) -> URI:
        """The URI that reaches this leg: ``sip:user@host:port;transport=...``."""
        scheme = "sips" if self.proto == "tls" else "sip"
        text = f"{scheme}:{user + '@' if user else ''}{self.sent_by()}"
        if self.proto == "tcp":
            text += ";transport=tcp"
        return URI.parse(text)

    def can_deliver_to(self, addr: Address | str, proto: str | None = None) -> bool:
        """Whether this leg can send to ``addr`` (over ``proto`` when given).

        The protocol must match and the address family must be the leg's.
        A leg bound to a loopback address only reaches loopback peers; a leg
        made from a connected socket reaches only its peer.
        """
        if proto is not None and proto.lower() != self.proto:
            return False
        address = parse_address(addr) if isinstance(addr, str) else addr
        if self.peer is not None:
            return _same_host(address[0], self.peer[0]) and address[1] == self.peer[1]
        host = address[0]
        if not is_ip_literal(host):
            return False
        if family_of(host) != self.family:
            return False
        mine = ipaddress.ip_address(self.host)
        return not mine.is_loopback or ipaddress.ip_address(host).is_loopback

    # ----- Via ----------------------------------------------------------------------

    def add_via(
        self, request: Request, dst: Address | None = None, branch: str | None = None
    ) -> Via:
        """Put this leg's Via on top of ``request`` (RFC 3261 section 18.1.1).

        The branch is fresh unless given; ``rport`` asks the server to answer
        to the source port (RFC 3581), which is what crosses a NAT.
        """
        branch = branch or new_branch()
        sent_by = self.sent_by(dst)
        request.headers.prepend("Via", self.via_text(branch, dst, sent_by))
        return Via(
            self.via_transport,
            *_split_sent_by(sent_by),
            params=Params((("branch", branch), ("rport", None))),
        )

    def via_text(self, branch: str, dst: Address | None = None, sent_by: str | None = None) -> str:
        """The Via value :meth:`add_via` puts on top, as text (for the per-packet
        path of a stateless proxy, which needs no :class:`Via` object)."""
        if sent_by is None:
            sent_by = self.sent_by(dst)
        return f"SIP/2.0/{self.via_transport} {sent_by};branch={branch};rport"

    def _our_via_prefix(self) -> str | None:
        # What starts every Via this leg writes, when that does not depend
        # on the destination (a leg bound to one address, no advertise).
        if self.advertise or self.host in ("0.0.0.0", "::"):
            return None
        cached = self._via_prefix
        if cached is None or cached[0] != self.port:
            prefix = f"SIP/2.0/{self.via_transport} {self.sent_by()}"
            cached = self._via_prefix = (self.port, prefix)
        return cached[1]

    def is_our_via(self, via: Via) -> bool:
        """True when ``via`` is one this leg would have written (RFC 3261 18.1.2)."""
        if via.transport != self.via_transport:
            return False
        if self.advertise:
            # The advertised sent-by (a NAT's address, perhaps its own port).
            host, port = _split_sent_by(self.sent_by())
            return via.host == host and via.default_port() == (port or via.default_port())
        if via.default_port() != self.port:
            return False
        if self.host in ("0.0.0.0", "::"):
            return family_of(via.host) == self.family if is_ip_literal(via.host) else False
        return _same_host(via.host, self.host)

    def check_response(self, response: Response) -> bool:
        """True when the top Via of ``response`` is ours; else it must be dropped."""
        prefix = self._our_via_prefix()
        if prefix is not None:
            # The Via exactly as we wrote it is recognised without parsing it.
            top = response.headers.first_value("via")
            if top is not None and top.startswith(prefix):
                after = top[len(prefix) : len(prefix) + 1]
                if after == ";" or after == "":
                    return True
        try:
            return self.is_our_via(response.top_via)
        except Exception:
            return False

    def remove_our_via(self, response: Response) -> bool:
        """Remove our Via from the top of ``response`` (a proxy's step, 16.7).

        Returns False, and changes nothing, when the top Via is not ours.
        """
        if not self.check_response(response):
            return False
        response.headers.pop_first_value("via")
        return True

    def strip_via(self, response: Response) -> Via | None:
        """Like :meth:`remove_our_via`, returning the removed :class:`Via` (or None)."""
        if not self.check_response(response):
            return None
        via = response.top_via
        response.headers.pop_first_value("via")
        return via

    # ----- I/O ------------------------------------------------------------------------

    def connection_to(self, peer: Address) -> bool:
        """True when a connection to ``peer`` is open (stream legs; never for UDP)."""
        return False

    @abc.abstractmethod
    async def bind(self) -> None:
        """Open and bind the socket (port 0 becomes the ephemeral port)."""

    @abc.abstractmethod
    async def serve(self, handler: PacketHandler) -> None:
        """Receive forever, calling ``handler`` for each packet; runs as a task."""

    @abc.abstractmethod
    async def send(self, data: bytes, dst: Address, *, tls_hostname: str | None = None) -> None:
        """Send ``data`` to ``dst``; raise :class:`TransportFailure` on failure."""

    def send_nowait(self, data: bytes, dst: Address) -> bool:
        """Send ``data`` to ``dst`` if that needs no waiting; False (nothing sent) if it does.

        For callers on the per-packet path, which have no task to wait in:
        a datagram leg sends when the kernel takes the datagram at once. A
        stream leg always says False (a connection may need opening, a
        buffer draining): :meth:`send` does it. Raises
        :class:`TransportFailure` like :meth:`send`.
        """
        return False

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every socket of this leg."""

    def statistics(self) -> LegStatistics:
        """The counters of this leg."""
        return self.stats

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.proto}:{format_address(self.address)}>"


def _split_sent_by(sent_by: str) -> tuple[str, int | None]:
    if sent_by.startswith("["):
        host, _, rest = sent_by[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, colon, port = sent_by.rpartition(":")
    if not colon or ":" in host:
        return sent_by, None
    return host, int(port)


def _same_host(a: str, b: str) -> bool:
    if a.lower() == b.lower():
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False
