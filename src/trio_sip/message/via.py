"""The Via header field value (RFC 3261 sections 8.1.1.7, 18.2.2, 20.42; RFC 3581)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final

from ..errors import ParseError
from ._text import WS
from .params import EMPTY_PARAMS, Params
from .uri import format_host, split_hostport

__all__ = ["Via", "MAGIC_COOKIE", "common_via_host"]

#: Every RFC 3261 branch starts with this (section 8.1.1.7).
MAGIC_COOKIE: Final = "z9hG4bK"

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# SLASH = SWS "/" SWS
_SENT_PROTOCOL_RE: Final = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*"
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
)


_TRANSPORTS: Final = frozenset({"UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})

# The shape of nearly every Via on a real network, a subset of via-parm:
# "SIP/2.0/" transport SP IPv4address-or-hostname [ ":" port ]
#   *( ";" token [ "=" token ] )
_COMMON_VIA_RE: Final = re.compile(
    r"SIP/2\.0/(?:UDP|TCP|TLS) ([A-Za-z0-9.\-]+)(?::[0-9]{1,5})?"
    r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~]+)?)*"
)


def common_via_host(text: str) -> str | None:
    """The sent-by host of a Via value in the common shape, without building a
    :class:`Via`; None for any other shape (then parse it)."""
    m = _COMMON_VIA_RE.fullmatch(text)
    return m.group(1) if m is not None else None


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport``.

    ``transport`` is upper case; ``host`` has no brackets. Parameters keep
    their order; the properties give the ones a stack needs typed.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = EMPTY_PARAMS
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value (not a comma list)."""
        text = text.strip(WS)
        sp = text.find(" ", 8)
        transport = text[8:sp]
        if text.startswith("SIP/2.0/") and transport in _TRANSPORTS:
            # The shape of nearly every Via on a real network.
            name, version = "SIP", "2.0"
            rest = text[sp + 1 :]
        else:
            m = _SENT_PROTOCOL_RE.match(text)
            if m is None:
                raise ParseError(f"bad Via sent-protocol: {text!r}")
            name, version, transport = m.groups()
            transport = transport.upper()
            rest = text[m.end() :]
        semi = rest.find(";")
        if semi >= 0:
            sent_by, ptext = rest[:semi].strip(WS), rest[semi:]
            params = Params.parse(ptext)
        else:
            sent_by, params = rest.strip(WS), EMPTY_PARAMS
        if " " in sent_by or "\t" in sent_by:
            # LWS around the colon of sent-by is legal (HCOLON-like SWS).
            sent_by = sent_by.replace(" ", "").replace("\t", "")
        host, port = split_hostport(sent_by, text)
        if name.upper() != "SIP" or version != "2.0":
            raise ParseError(f"unsupported protocol in Via: {text!r}")
        return cls(transport, host, port, params, "SIP/2.0")

    # ----- parameters ---------------------------------------------------------

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter, or None."""
        return self.params.get("branch")

    @property
    def has_magic_cookie(self) -> bool:
        """True when the branch is an RFC 3261 one (not an RFC 2543 relic).

        A branch that is the magic cookie alone promises an RFC 3261
        transaction identifier and carries none (RFC 4475 section 3.2.1):
        it is not one, so matching falls back to RFC 2543 rules instead of
        lumping every such request into a single transaction.
        """
        branch = self.branch
        return (
            branch is not None
            and len(branch) > len(MAGIC_COOKIE)
            and branch.startswith(MAGIC_COOKIE)
        )

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 section 18.2.1), or None."""
        return self.params.get("received")

    @property
    def rport(self) -> int | bool | None:
        """``None`` when absent, ``True`` when requested (no value), else the port."""
        if "rport" not in self.params:
            return None
        value = self.params.get("rport")
        if not value:
            return True
        try:
            return int(value)
        except ValueError:
            raise ParseError(f"bad rport value {value!r}") from None

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter, or None."""
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter as an int, or None."""
        value = self.params.get("ttl")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise ParseError(f"bad ttl value {value!r}") from None

    @property
    def sent_by(self) -> tuple[str, int]:
        """``(host, port)`` with the default port filled in (5061 for TLS)."""
        return self.host, self.default_port()

    def default_port(self) -> int:
        """The sent-by port, or the transport's default when absent."""
        if self.port is not None:
            return self.port
        return 5061 if self.transport in ("TLS", "WSS") else 5060

    @property
    def reliable(self) -> bool:
        """True for stream transports (no retransmission, RFC 3261 section 17)."""
        return self.transport != "UDP"

    def with_params(self, **params: str | None) -> Via:
        """A copy with parameters set (``None`` value makes a flag)."""
        new = self.params
        for name, value in params.items():
            new = new.with_param(name, value)
        return dataclasses.replace(self, params=new)

    def __str__(self) -> str:
        host = format_host(self.host)
        sent_by = host if self.port is None else f"{host}:{self.port}"
        return f"{self.protocol}/{self.transport} {sent_by}{self.params}"
