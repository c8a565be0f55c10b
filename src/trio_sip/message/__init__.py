"""The sans-IO message layer: parse, inspect, change and build SIP messages.

Nothing here does I/O or reads a clock: it takes bytes and returns objects,
and the other way round.
"""

from .address import NameAddr
from .build import make_ack, make_cancel, make_response, new_branch, new_call_id, new_tag
from .cseq import CSeq
from .framing import KeepAlivePing, KeepAlivePong, StreamFramer
from .headers import COMPACT_FORMS, Headers, canonical_name
from .model import KNOWN_METHODS, REASON_PHRASES, Message, Request, Response
from .params import Params
from .parse import DEFAULT_LIMITS, ParseLimits, parse_message
from .uri import URI, URIParams
from .via import MAGIC_COOKIE, Via

__all__ = [
    "COMPACT_FORMS",
    "CSeq",
    "DEFAULT_LIMITS",
    "Headers",
    "KNOWN_METHODS",
    "KeepAlivePing",
    "KeepAlivePong",
    "MAGIC_COOKIE",
    "Message",
    "NameAddr",
    "Params",
    "ParseLimits",
    "REASON_PHRASES",
    "Request",
    "Response",
    "StreamFramer",
    "URI",
    "URIParams",
    "Via",
    "canonical_name",
    "make_ack",
    "make_cancel",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
]
