"""SIP requests and responses (RFC 3261 section 7).

A message keeps its header section as a :class:`~trio_sip.message.Headers`
and its body as bytes. Typed views (``via``, ``cseq``, ``from_`` ...) are
parsed on first use and cached until the headers change, so a proxy that only
looks at the top Via and the Request-URI never parses the rest. A message that
was parsed and not changed serialises to the very bytes it came from.
"""

from __future__ import annotations

import abc
import datetime
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from ..errors import ParseError
from ._text import refuse_line_breaks
from .address import NameAddr
from .cseq import CSeq
from .headers import Headers, display_name
from .uri import URI
from .via import Via

__all__ = ["KNOWN_METHODS", "Message", "Request", "Response", "REASON_PHRASES"]

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")

# A view not computed yet (None is a value some views have).
_MISSING: Final[Any] = object()

#: Default reason phrases (RFC 3261 section 21 and later registrations).
REASON_PHRASES: Final[dict[int, str]] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
}

SIP_VERSION: Final = "SIP/2.0"

#: The methods of RFC 3261 and its common extensions (PRACK, SUBSCRIBE,
#: NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE).
KNOWN_METHODS: Final = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


class Message(abc.ABC):
    """What requests and responses share: headers, body and typed views."""

    __slots__ = ("_body", "_raw", "_raw_version", "_views", "_views_version", "headers")

    def __init__(
        self,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._body = body
        self._raw: bytes | None = None
        self._raw_version = -1
        self._views: dict[str, Any] = {}
        self._views_version = -1

    def _reset_parsed(self) -> None:
        # What the parser's constructors share; the parser sets headers and body.
        self._body = b""
        self._raw = None
        self._raw_version = -1
        self._views = {}
        self._views_version = -1

    # ----- body ---------------------------------------------------------------

    @property
    def body(self) -> bytes:
        """The message body; setting it also sets Content-Length."""
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = bytes(value)
        self.headers.set("Content-Length", str(len(self._body)))
        self._raw = None

    # ----- typed views ----------------------------------------------------------

    def _view(self: _M, name: str, build: Callable[[_M], _T]) -> _T:
        # Views are cached until the headers change (Headers.version moves).
        views = self._views
        if self._views_version != self.headers.version:
            views.clear()
            self._views_version = self.headers.version
        else:
            # get() rather than a caught KeyError: most views are read for the
            # first time (a message is parsed once), and raising costs more.
            value = views.get(name, _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[no-any-return]
        value = views[name] = build(self)
        return value

    def drop_views(self) -> None:
        """Let go of the parsed views (each is parsed again if asked for) and
        keep the header lines compact (:meth:`Headers.compact`).

        For a message kept long but rarely read again, such as the request
        and response a transaction holds while it waits out its 64*T1:
        the views are a dozen small objects per message, and the header
        lines three lists, which the garbage collector would walk again and
        again.
        """
        self._views = {}
        self._views_version = -1
        self.headers.compact()

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header")
        return value

    @property
    def top_via(self) -> Via:
        """The first Via value (raises ParseError when there is none)."""
        # The cached view without a call: read for every packet, several times.
        if self._views_version == self.headers.version:
            via: Via | None = self._views.get("top_via")
            if via is not None:
                return via
        return self._view("top_via", _build_top_via)

    def replace_top_via(self, via: Via) -> None:
        """Put ``via`` in place of the first Via value (RFC 3261 18.2.1 stamps
        ``received`` and ``rport`` there). The new value is also the cached
        :attr:`top_via`: nobody has to parse back what was just built."""
        headers = self.headers
        headers.pop_first_value("via")
        headers.prepend("Via", str(via))
        if self._views_version != headers.version:
            self._views.clear()
            self._views_version = headers.version
        self._views["top_via"] = via

    @property
    def via(self) -> tuple[Via, ...]:
        """Every Via value, top first."""
        return self._view("via", _build_via)

    @property
    def call_id(self) -> str:
        """The Call-ID (raises ParseError when absent or empty)."""
        return self._view("call_id", _build_call_id)

    @property
    def cseq(self) -> CSeq:
        """The CSeq (raises ParseError when absent or malformed)."""
        return self._view("cseq", _build_cseq)

    @property
    def from_(self) -> NameAddr:
        """The From address (``from`` is a Python keyword)."""
        return self._view("from", _build_from)

    @property
    def to(self) -> NameAddr:
        """The To address."""
        return self._view("to", _build_to)

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """Every Contact value, in order (empty for ``Contact: *``, see :attr:`contact_is_star`)."""
        return self._view("contacts", _build_contacts)

    @property
    def contact_is_star(self) -> bool:
        """True for the ``Contact: *`` of a REGISTER that removes every binding."""
        return self.headers.values("contact") == ["*"]

    @property
    def routes(self) -> tuple[NameAddr, ...]:
        """The Route set, in order."""
        return self._view("route", _build_routes)

    @property
    def record_routes(self) -> tuple[NameAddr, ...]:
        """The Record-Route values, in order."""
        return self._view("record_route", _build_record_routes)

    def _int_header(self, key: str, name: str, limit: int) -> int | None:
        # ``key`` is the lookup key (lower case): this runs for every parsed
        # message (Content-Length), so it skips Headers.get's name mapping.
        headers = self.headers
        try:
            value = headers._values[headers._keys.index(key)]
        except ValueError:
            return None
        if value.isdigit() and value.isascii() and len(value) <= 10:
            number = int(value)
            if number <= limit:
                return number
        raise ParseError(f"bad {name} value {value[:40]!r}")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255), or None when absent."""
        return self._view("max_forwards", _build_max_forwards)

    @property
    def content_length(self) -> int | None:
        """Content-Length, or None when absent."""
        return self._view("content_length", _build_content_length)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or None when absent."""
        return self._view("expires", _build_expires)

    @property
    def min_expires(self) -> int | None:
        """Min-Expires in seconds (a 423's, RFC 3261 section 20.23), or None when absent."""
        return self._view("min_expires", _build_min_expires)

    @property
    def retry_after(self) -> int | None:
        """Retry-After in seconds (section 20.33; its comment and parameters
        aside), or None when absent."""
        return self._view("retry_after", _build_retry_after)

    @property
    def date(self) -> datetime.datetime | None:
        """The Date header as an aware UTC datetime, or None when absent.

        Raises ParseError for anything but RFC 3261's rfc1123-date in GMT
        (RFC 4475 section 3.1.2.12): only an element that uses the date has
        to reject the message for it; :meth:`validate` does not look.
        """
        return self._view("date", _build_date)

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower case, without parameters."""
        value = self.headers.get("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(" \t").lower()

    # ----- output ---------------------------------------------------------------

    @property
    @abc.abstractmethod
    def start_line(self) -> str:
        """The request or status line, without CRLF."""

    def to_bytes(self) -> bytes:
        """The message on the wire; byte-exact for an unchanged parsed message.

        A Content-Length header is added when there is none: stream
        transports need it (RFC 3261 section 18.3) and it costs nothing on UDP.
        """
        raw = self._raw
        if raw is not None and self._raw_version == self.headers.version:
            return raw
        headers = self.headers
        text = headers.to_text()
        if "content-length" not in headers:
            text += f"Content-Length: {len(self._body)}\r\n"
        data = f"{self.start_line}\r\n{text}\r\n".encode("utf-8", "surrogateescape") + self._body
        self._raw = data
        self._raw_version = headers.version
        return data

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def _set_raw(self, data: bytes) -> None:
        self._raw = data
        self._raw_version = self.headers.version

    def _invalidate_raw(self) -> None:
        self._raw = None

    def summary(self) -> str:
        """A one-line description for logs: start line, CSeq and Call-ID."""
        cseq = self.headers.get("cseq", "?")
        call_id = self.headers.get("call-id", "?")
        return f"{self.start_line} [CSeq {cseq}; Call-ID {call_id}]"


def _build_top_via(msg: Message) -> Via:
    value = msg.headers.first_value("via")
    if value is None:
        raise ParseError("missing Via header")
    return Via.parse(value)


def _build_via(msg: Message) -> tuple[Via, ...]:
    return tuple(map(Via.parse, msg.headers.values("via")))


def _build_call_id(msg: Message) -> str:
    value = msg._required("call-id")
    if not value or " " in value or "\t" in value:
        raise ParseError(f"bad Call-ID {value!r}")
    return value


def _build_cseq(msg: Message) -> CSeq:
    return CSeq.parse(msg._required("cseq"))


def _build_from(msg: Message) -> NameAddr:
    return NameAddr.parse(msg._required("from"))


def _build_to(msg: Message) -> NameAddr:
    return NameAddr.parse(msg._required("to"))


def _build_contacts(msg: Message) -> tuple[NameAddr, ...]:
    values = msg.headers.values("contact")
    if values == ["*"]:
        return ()
    return tuple(map(NameAddr.parse, values))


def _build_routes(msg: Message) -> tuple[NameAddr, ...]:
    return tuple(map(NameAddr.parse, msg.headers.values("route")))


def _build_record_routes(msg: Message) -> tuple[NameAddr, ...]:
    return tuple(map(NameAddr.parse, msg.headers.values("record-route")))


def _build_max_forwards(msg: Message) -> int | None:
    return msg._int_header("max-forwards", "Max-Forwards", 255)


def _build_content_length(msg: Message) -> int | None:
    length = msg._int_header("content-length", "Content-Length", 2**31)
    # Two lengths leave the body without a frame (RFC 4475 section 3.3.9);
    # a repeated equal value is harmless and is tolerated.
    if length is not None and msg.headers._keys.count("content-length") > 1:
        values = msg.headers.get_all("content-length")
        if any(value != values[0] for value in values):
            raise ParseError(f"conflicting Content-Length values {values[:4]!r}")
    return length


def _build_expires(msg: Message) -> int | None:
    return msg._int_header("expires", "Expires", 2**32 - 1)


def _build_min_expires(msg: Message) -> int | None:
    return msg._int_header("min-expires", "Min-Expires", 2**32 - 1)


# Retry-After = delta-seconds [ comment ] *( SEMI retry-param )
def _build_retry_after(msg: Message) -> int | None:
    value = msg.headers.get("retry-after")
    if value is None:
        return None
    seconds = value.split(";", 1)[0].split("(", 1)[0].strip(" \t")
    if seconds.isdigit() and seconds.isascii() and len(seconds) <= 10:
        return int(seconds)
    raise ParseError(f"bad Retry-After value {value[:40]!r}")


# SIP-date = rfc1123-date ; rfc1123-date = wkday "," SP date1 SP time SP "GMT"
# date1 = 2DIGIT SP month SP 4DIGIT ; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT
_DATE_RE: Final = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
# Month names at offsets 0, 3, 6 ...: the index over 3 is the month number less one.
_MONTHS: Final = "JanFebMarAprMayJunJulAugSepOctNovDec"


def _build_date(msg: Message) -> datetime.datetime | None:
    value = msg.headers.get("date")
    if value is None:
        return None
    m = _DATE_RE.fullmatch(value)
    if m is None:
        raise ParseError(f"bad Date value {value[:60]!r}")
    day, month, year, hour, minute, second = m.groups()
    try:
        return datetime.datetime(
            int(year),
            _MONTHS.index(month) // 3 + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=datetime.UTC,
        )
    except ValueError:
        raise ParseError(f"bad Date value {value[:60]!r}") from None


# RFC 3261 section 7.3.1: only list-valued headers may repeat. These may
# not, and a UAS cannot act on a request that has two of one (RFC 4475
# section 3.3.8).
_SINGLE_VALUED: Final = ("from", "to", "call-id", "cseq", "max-forwards", "content-length")


def _check_single_valued(msg: Message) -> None:
    keys = msg.headers._keys
    for key in _SINGLE_VALUED:
        if keys.count(key) > 1:
            raise ParseError(f"more than one {display_name(key)} header")


class Request(Message):
    """A SIP request: method, Request-URI, headers and body."""

    __slots__ = ("_method", "_uri", "_uri_text")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        refuse_line_breaks(method, "a method")
        self._method = method
        self._uri: URI | None
        if isinstance(uri, URI):
            self._uri, self._uri_text = uri, str(uri)
        else:
            refuse_line_breaks(uri, "a Request-URI")
            self._uri, self._uri_text = None, uri

    @classmethod
    def _parsed(cls, method: str, uri_text: str) -> Request:
        # The parser's constructor: headers and body are filled in by it.
        self = cls.__new__(cls)
        self._method = method
        self._uri = None
        self._uri_text = uri_text
        self._reset_parsed()
        return self

    @property
    def method(self) -> str:
        """The method, case-sensitive as RFC 3261 section 7.1 says."""
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        refuse_line_breaks(value, "a method")
        self._method = value
        self._raw = None

    @property
    def uri(self) -> URI:
        """The Request-URI (parsed on first use)."""
        uri = self._uri
        if uri is None:
            uri = self._uri = URI.parse(self._uri_text)
        return uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri, self._uri_text = value, str(value)
        self._raw = None

    @property
    def uri_text(self) -> str:
        """The Request-URI as written, without parsing it."""
        return self._uri_text

    @property
    def start_line(self) -> str:
        """``METHOD Request-URI SIP/2.0``."""
        return f"{self._method} {self._uri_text} {SIP_VERSION}"

    def validate(self) -> None:
        """Check what a UAS or a stateful element needs (RFC 3261 section 8.2).

        The mandatory headers parse, the CSeq method matches the request
        method and the Request-URI is one we can handle. Raises ParseError
        with the status a server should answer with.
        """
        uri = self.uri
        if uri.scheme not in ("sip", "sips", "tel"):
            raise ParseError(f"unsupported URI scheme {uri.scheme!r}", status_hint=416)
        if uri.headers:
            # RFC 3261 section 19.1.1: headers are not allowed in a Request-URI
            # (RFC 4475 section 3.1.2.11).
            raise ParseError(f"headers in the Request-URI {self._uri_text[:80]!r}")
        _check_single_valued(self)
        self.top_via  # noqa: B018 - parsing is the check
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.call_id  # noqa: B018
        self.max_forwards  # noqa: B018
        self.content_length  # noqa: B018
        if self.cseq.method != self._method:
            raise ParseError(
                f"CSeq method {self.cseq.method!r} does not match request method {self._method!r}"
            )

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri_text}>"


class Response(Message):
    """A SIP response: status code, reason phrase, headers and body."""

    __slots__ = ("_reason", "_status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self._status = status
        if reason is None:
            reason = REASON_PHRASES.get(status, "")
        else:
            refuse_line_breaks(reason, "a reason phrase")
        self._reason = reason

    @classmethod
    def _parsed(cls, status: int, reason: str) -> Response:
        # The parser's constructor: headers and body are filled in by it.
        self = cls.__new__(cls)
        self._status = status
        self._reason = reason
        self._reset_parsed()
        return self

    @property
    def status(self) -> int:
        """The status code, 100-699."""
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self._raw = None

    @property
    def reason(self) -> str:
        """The reason phrase."""
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        refuse_line_breaks(value, "a reason phrase")
        self._reason = value
        self._raw = None

    @property
    def is_provisional(self) -> bool:
        """True for 1xx."""
        return self._status < 200

    @property
    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self._status < 300

    @property
    def start_line(self) -> str:
        """``SIP/2.0 status reason``."""
        return f"{SIP_VERSION} {self._status} {self._reason}"

    def validate(self) -> None:
        """Check the headers a UAC needs to match and process this response."""
        _check_single_valued(self)
        self.top_via  # noqa: B018 - parsing is the check
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.content_length  # noqa: B018

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"
