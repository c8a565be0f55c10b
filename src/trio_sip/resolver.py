"""Finding where a request goes: targets for a URI.

:class:`Target` is what every resolution yields: a transport, an IP address,
a port and the host name that TLS verifies the peer against. Until the full
RFC 3263 resolver exists, :class:`SystemResolver` resolves through the
system's getaddrinfo (run by anyio in a worker thread): an IP literal is used
as it is, a name becomes its addresses, the transport comes from the URI.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Protocol

import anyio

from .errors import ResolveError
from .message import URI
from .transport.leg import is_ip_literal

__all__ = ["Target", "Resolver", "SystemResolver", "uri_transport"]


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request to."""

    #: "udp", "tcp" or "tls"
    transport: str
    #: an IP address (no brackets)
    host: str
    port: int
    #: the name a TLS peer's certificate must match (the SIP domain), if any
    hostname: str | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port


class Resolver(Protocol):
    """Anything that turns a URI into an ordered list of targets."""

    async def resolve(self, uri: URI) -> list[Target]:
        """The targets for ``uri``, best first; raise ResolveError when none."""
        ...


def uri_transport(uri: URI) -> str:
    """The transport a URI asks for: ``transport=``, else tls for sips, else udp."""
    transport = uri.transport
    if transport in ("udp", "tcp", "tls"):
        return "tls" if uri.is_secure and transport == "tcp" else transport
    return "tls" if uri.is_secure else "udp"


class SystemResolver:
    """Resolution through getaddrinfo: no NAPTR or SRV, default ports only."""

    async def resolve(self, uri: URI) -> list[Target]:
        """Targets for ``uri`` (``maddr`` overrides the host)."""
        transport = uri_transport(uri)
        host = uri.maddr or uri.host
        port = uri.port or (5061 if transport == "tls" else 5060)
        hostname = None if is_ip_literal(uri.host) else uri.host
        if is_ip_literal(host):
            return [Target(transport, host, port, hostname)]
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        try:
            infos = await anyio.getaddrinfo(host, port, type=kind)
        except OSError as exc:
            raise ResolveError(f"cannot resolve {host!r}: {exc}") from exc
        targets: list[Target] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            target = Target(transport, str(sockaddr[0]), port, hostname)
            if target not in targets:
                targets.append(target)
        if not targets:
            raise ResolveError(f"no address for {host!r}")
        return targets
