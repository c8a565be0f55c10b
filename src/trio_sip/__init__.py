"""trio-sip: SIP (RFC 3261) for structured-concurrency Python."""

from __future__ import annotations

from .errors import (
    DeliveryError,
    DeliveryFailure,
    ParseError,
    ResolveError,
    SIPError,
    TransportError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "DeliveryError",
    "DeliveryFailure",
    "ParseError",
    "ResolveError",
    "SIPError",
    "TransportError",
    "__version__",
]
