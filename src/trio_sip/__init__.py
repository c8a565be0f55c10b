"""trio-sip: SIP (RFC 3261) for structured-concurrency Python.

The names most programs need are here; the layers have their own modules:
:mod:`trio_sip.message` (sans-IO messages, SDP, digest),
:mod:`trio_sip.transaction` (sans-IO transactions),
:mod:`trio_sip.transport` (legs) and :mod:`trio_sip.dispatcher`.
"""

from __future__ import annotations

from .dispatcher import Dispatcher, DispatcherStatistics, TimerHandle
from .endpoint import (
    ClientRequest,
    Dialog,
    DialogId,
    DialogState,
    Endpoint,
    EndpointStatistics,
    RequestFailed,
)
from .errors import (
    DeliveryError,
    DeliveryFailure,
    ParseError,
    ResolveError,
    ResolveFailure,
    SIPError,
    TransportError,
)
from .media import (
    MediaSession,
    PortRange,
    answer_offer,
    hold_offer,
    make_offer,
    read_answer,
    resume_offer,
)
from .message import URI, NameAddr, Request, Response, Via, parse_message
from .resolver import DNSResolver, SystemResolver, Target
from .server import (
    Authorize,
    Binding,
    BindingStore,
    Blocker,
    Dropper,
    MemoryStore,
    ReceiveChain,
    Redirect,
    Registrar,
    SQLiteStore,
    StatelessProxy,
)
from .transport import Leg, TCPLeg, TLSLeg, UDPLeg
from .ua import Call, CallFailed, RegistrationFailed, UserAgent

__version__ = "0.1.0.dev0"

__all__ = [
    "Authorize",
    "Binding",
    "BindingStore",
    "Blocker",
    "Call",
    "CallFailed",
    "ClientRequest",
    "Dialog",
    "DialogId",
    "DialogState",
    "Endpoint",
    "EndpointStatistics",
    "RequestFailed",
    "Dropper",
    "MediaSession",
    "MemoryStore",
    "PortRange",
    "ReceiveChain",
    "Redirect",
    "RegistrationFailed",
    "Registrar",
    "SQLiteStore",
    "StatelessProxy",
    "DeliveryError",
    "DeliveryFailure",
    "Dispatcher",
    "DispatcherStatistics",
    "Leg",
    "NameAddr",
    "ParseError",
    "Request",
    "DNSResolver",
    "ResolveError",
    "ResolveFailure",
    "Response",
    "SIPError",
    "SystemResolver",
    "TCPLeg",
    "TLSLeg",
    "Target",
    "TimerHandle",
    "TransportError",
    "UDPLeg",
    "UserAgent",
    "URI",
    "Via",
    "__version__",
    "answer_offer",
    "hold_offer",
    "make_offer",
    "read_answer",
    "resume_offer",
    "parse_message",
]
