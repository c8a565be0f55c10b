"""The one exception hierarchy of trio-sip.

Everything the library raises on purpose derives from :class:`SIPError`.
Backend exceptions (trio's, asyncio's, the socket module's) are translated
into these at the I/O boundary, so user code never has to know which event
loop it runs on.
"""

from __future__ import annotations

import enum

__all__ = [
    "SIPError",
    "ParseError",
    "TransportError",
    "DeliveryError",
    "DeliveryFailure",
    "ResolveError",
    "ResolveFailure",
]


class SIPError(Exception):
    """Base class of every error trio-sip raises."""


class ParseError(SIPError):
    """The bytes are not a SIP message (or value) we can accept.

    ``status_hint`` is the response a server should send when the message got
    far enough to be answered: 400 for a malformed request, 413 when it is over
    the size limit, 416 for an unsupported URI scheme, 505 for an unknown SIP
    version.
    """

    def __init__(self, reason: str, *, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint


class TransportError(SIPError):
    """A socket-level failure: bind, connect, send or TLS handshake."""


class DeliveryFailure(enum.Enum):
    """Why a delivery failed for good."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    NO_ROUTE = "no route"
    CONNECTION_REFUSED = "connection refused"
    TLS_FAILURE = "tls failure"
    TRANSPORT = "transport error"
    CANCELLED = "cancelled"


class DeliveryError(SIPError):
    """A packet could not be delivered; ``reason`` says why."""

    def __init__(self, reason: DeliveryFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class ResolveFailure(enum.Enum):
    """Why a resolution failed."""

    #: the name does not exist, or has no usable records (an empty answer)
    NOT_FOUND = "not found"
    #: a lookup took longer than its bound
    TIMEOUT = "timeout"
    #: the name servers answered SERVFAIL or REFUSED, or not at all
    SERVER_FAILURE = "server failure"
    #: an answer that cannot be parsed or used (bad NAPTR, bad name ...)
    MALFORMED = "malformed answer"
    #: a NAPTR replacement or CNAME chain that comes back to itself
    LOOP = "loop"
    #: the URI asks for a transport the caller cannot use
    NO_TRANSPORT = "no usable transport"


class ResolveError(SIPError):
    """RFC 3263 resolution found no usable target; ``reason`` says why.

    The message starts with the reason's value, then the detail.
    """

    def __init__(
        self, reason: ResolveFailure | str = ResolveFailure.NOT_FOUND, detail: str = ""
    ) -> None:
        if isinstance(reason, str):  # a plain message: the reason is unknown
            failure, detail, message = ResolveFailure.NOT_FOUND, reason, reason
        else:
            failure = reason
            message = f"{reason.value}: {detail}" if detail else reason.value
        super().__init__(message)
        self.reason = failure
        self.detail = detail
