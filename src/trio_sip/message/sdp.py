"""SDP session descriptions (RFC 4566): parse, build and serialise, sans-IO.

The model is a tree of frozen, slotted dataclasses: a :class:`SessionDescription`
holds its :class:`Media` sections, and every line becomes a typed value.

Why frozen: an SDP is a value that offer/answer (RFC 3264) keeps, compares and
sends from several places at once (the dialog's last offer and answer, a
retransmitted 200 OK ...). Immutable values can be shared without defensive
copies, they hash, and the checks made when one is built stay true for its
whole life. Change one with :func:`dataclasses.replace` or the ``with_*``
helpers; list-valued fields are tuples (lists passed in are turned into tuples).

Every constructor checks its values and raises :class:`ValueError` for anything
that could not be written as SDP (a CR in a text field, a port over 65535, an
rtpmap that does not parse ...). So a model that exists always serialises, and
``SessionDescription.parse(x.to_bytes()) == x``. :meth:`SessionDescription.parse`
reports those problems, and every other malformation, as
:class:`~trio_sip.errors.ParseError` with ``status_hint`` 400, and never raises
anything else on bad input.

What the parser tolerates and what it refuses (RFC 4566 section 5):

- Records may end in CRLF or in a bare LF ("parsers SHOULD be tolerant and also
  accept records terminated with a single newline character"); the last record
  may lack its end, and trailing blank lines are dropped. Output is always CRLF.
- Runs of spaces between the fields of structured lines (o=, c=, m=, t= ...),
  and blanks after a flag attribute (``a=sendrecv``).
- The optional lines of a section in any order. Each type letter fills its own
  field, so their order carries no meaning that could be lost; we enforce the
  order where it does carry meaning: ``v=`` is the first line, ``o=``, ``s=``
  and at least one ``t=`` are present, ``r=`` follows its ``t=``, every line
  after an ``m=`` belongs to that media section (session-only letters are
  refused there), and a single-valued line (``c=`` at session level, ``i=``,
  ``k=`` ...) appears at most once per section. Output follows the order
  section 5 mandates.
- A type letter that RFC 4566 does not define makes the whole description
  unusable: "an SDP parser MUST completely ignore any session description that
  contains a type letter that it does not understand" (section 5). ``parse``
  raises ParseError, which is how the caller ignores it; skipping only the line
  would act on a description the RFC says to drop.
- Unknown *attributes* are kept, in order, as :class:`Attribute`; the ones this
  module interprets (rtpmap, ptime, the four directions) are checked.
- Text is UTF-8, the default when no ``a=charset`` is present; other charsets
  are not supported and give ParseError.
- Neither the presence of a ``c=`` for every media section nor the syntax of
  ``u=``, ``e=``, ``p=`` and ``k=`` values is checked beyond "text".
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from trio_sip.errors import ParseError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "Media",
    "Origin",
    "Repeat",
    "RtpMap",
    "STATIC_PAYLOAD_TYPES",
    "SessionDescription",
    "Timing",
    "ZoneAdjustment",
]

# --- Grammar (RFC 4566 section 9) ------------------------------------------------

# token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
_TOKEN_CHARS: Final = r"!#$%&'*+\-.0-9A-Z^_`a-z{|}~"

# token = 1*(token-char)
_TOKEN: Final = re.compile(f"[{_TOKEN_CHARS}]+")

# proto = token *("/" token)
_PROTO: Final = re.compile(f"[{_TOKEN_CHARS}]+(?:/[{_TOKEN_CHARS}]+)*")

# non-ws-string = 1*(VCHAR/%x80-FF)
# (the bytes %x80-FF are those of UTF-8 sequences: any non-ASCII character here,
# surrogates excepted since they cannot be encoded)
_NON_WS_CHARS: Final = "!-~\x80-\ud7ff\ue000-\U0010ffff"
_NON_WS: Final = re.compile(f"[{_NON_WS_CHARS}]+")

# text        = byte-string
# byte-string = 1*(%x01-09/%x0B-0C/%x0E-FF)  ; any byte except NUL, CR, or LF
# '*' rather than '1*': an empty "s=" or "i=" is common in the wild and harmless.
_TEXT: Final = re.compile("[\x01-\x09\x0b\x0c\x0e-\ud7ff\ue000-\U0010ffff]*")

# 1*DIGIT (sess-id, sess-version, bwtype value, start-time, stop-time, time),
# capped at 40 digits: int() refuses more than 4300 digits with ValueError, and
# no SDP number comes near 40 (the largest, sess-id, is 64 bits by custom).
_NUMBER: Final = re.compile("[0-9]{1,40}")
_MAX_NUMBER: Final = 10**40 - 1

# proto-version = %x76 "=" 1*DIGIT CRLF  ;this memo describes version 0
_VERSION: Final = re.compile("[0-9]{1,40}")

# media-field = %x6d "=" media SP port ["/" integer] SP proto 1*(SP fmt) CRLF
# port        = 1*DIGIT
# integer     = POS-DIGIT *DIGIT
_PORT: Final = re.compile("([0-9]{1,40})(?:/([1-9][0-9]{0,39}))?")

# fmt = token  ;typically an RTP payload type for audio and video media
# and for RTP, a payload type: 7 bits (RFC 3550 section 5.1), so 1 to 3 digits
_PAYLOAD_TYPE: Final = re.compile("[0-9]{1,3}")

# bandwidth-fields = *(%x62 "=" bwtype ":" bandwidth CRLF)
# bwtype           = token
# bandwidth        = 1*DIGIT
_BANDWIDTH: Final = re.compile(f"([{_TOKEN_CHARS}]+):([0-9]{{1,40}})")

# typed-time          = 1*DIGIT [fixed-len-time-unit]
# fixed-len-time-unit = %x64 / %x68 / %x6d / %x73
# zone-adjustments    = %x7a "=" time SP ["-"] typed-time *(SP time SP ["-"] typed-time)
# (the optional "-" is only allowed in z=; the caller checks that)
_TYPED_TIME: Final = re.compile("(-?)([0-9]{1,40})([dhms]?)")
_UNIT_SECONDS: Final[Mapping[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# IP4-multicast = m1 3( "." decimal-uchar ) "/" ttl [ "/" integer ]
# ttl           = (POS-DIGIT *2DIGIT) / "0"
_TTL: Final = re.compile("0|[1-9][0-9]{0,2}")

# IP6-multicast = hexpart [ "/" integer ]
# integer       = POS-DIGIT *DIGIT
_COUNT: Final = re.compile("[1-9][0-9]{0,39}")

# RFC 4566 section 6:
#   a=rtpmap:<payload type> <encoding name>/<clock rate> [/<encoding parameters>]
# the encoding name is a media subtype, a token; the parameters (audio: channels)
# are free-form but have no blanks.
_RTPMAP: Final = re.compile(
    f"([0-9]{{1,3}}) +([{_TOKEN_CHARS}]+)/([0-9]{{1,40}})(?:/([{_NON_WS_CHARS}]+))?"
)

# RFC 8866 section 6.4: ptime-value = non-zero-int-or-real, in milliseconds
# ("22.5" is valid). A zero is tolerated, as RFC 4566 gave no grammar.
_PTIME: Final = re.compile("[0-9]{1,40}(?:[.][0-9]{1,40})?")

_KNOWN_LETTERS: Final = frozenset("vosiuepcbtrzkam")
_SESSION_ONCE: Final = frozenset("osiuczk")
_MEDIA_LETTERS: Final = frozenset("icbka")
_MEDIA_ONCE: Final = frozenset("ik")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(pattern: re.Pattern[str], value: object, what: str) -> None:
    # Not memoised itself: the checks of whole lines below are.
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ValueError(f"invalid {what}: {_short(value)}")


def _check_text(value: object, what: str) -> None:
    _check(_TEXT, value, what)


def _check_int(value: object, what: str, low: int = 0, high: int = _MAX_NUMBER) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"invalid {what}: {_short(value)}")


def _number(pattern: re.Pattern[str], text: str, what: str) -> int:
    if pattern.fullmatch(text) is None:
        raise ValueError(f"invalid {what}: {_short(text)}")
    return int(text)


@functools.lru_cache(maxsize=1024)
def _ip_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Memoised: the same few addresses are in every offer and answer.
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _addrtype_of(address: str) -> str:
    ip = _ip_address(address)
    # A host name: SDP has no separate address type for names, and IP4 is
    # what every implementation writes for them.
    return "IP6" if ip is not None and ip.version == 6 else "IP4"


def _as_tuples(instance: object, names: tuple[str, ...]) -> None:
    # A frozen model takes any iterable for its sequence fields and keeps a
    # tuple; what is a tuple already (as the parser and the builders pass)
    # is kept as it is.
    for name in names:
        value = getattr(instance, name)
        if type(value) is not tuple:
            object.__setattr__(instance, name, tuple(value))


# The checks below are memoised: an answering UA builds the same o= names,
# a=rtpmap, a=ptime and media lines call after call, and only the port or the
# session id differs (checked each time, outside these). A value that fails
# raises, which lru_cache does not remember.


@functools.lru_cache(maxsize=1024)
def _check_origin(username: str, nettype: str, addrtype: str, address: str) -> None:
    _check(_NON_WS, username, "o= username")
    _check(_TOKEN, nettype, "o= nettype")
    _check(_TOKEN, addrtype, "o= addrtype")
    _check(_NON_WS, address, "o= address")


@functools.lru_cache(maxsize=1024)
def _check_session(
    session_name: str,
    information: str | None,
    uri: str | None,
    key: str | None,
    emails: tuple[str, ...],
    phones: tuple[str, ...],
) -> None:
    _check_text(session_name, "s=")
    for what, text in (("i=", information), ("u=", uri), ("k=", key)):
        if text is not None:
            _check_text(text, what)
    for email in emails:
        _check_text(email, "e=")
    for phone in phones:
        _check_text(phone, "p=")


@functools.lru_cache(maxsize=1024, typed=True)
def _check_connection(
    nettype: str, addrtype: str, address: str, ttl: int | None, count: int | None
) -> None:
    _check(_TOKEN, nettype, "c= nettype")
    _check(_TOKEN, addrtype, "c= addrtype")
    _check(_NON_WS, address, "c= address")
    ip = addrtype in ("IP4", "IP6")
    if ip and "/" in address:
        raise ValueError("c= address: put a multicast suffix in ttl and count")
    if ttl is not None:
        if addrtype != "IP4":
            raise ValueError("c= TTL: only an IP4 address carries one")
        _check_int(ttl, "c= TTL", 0, 255)
    if count is not None:
        if not ip:
            raise ValueError("c= address count: only IP4 and IP6 addresses carry one")
        if addrtype == "IP4" and ttl is None:
            raise ValueError("c= address count: an IP4 count needs a TTL before it")
        _check_int(count, "c= address count", 1)


@functools.lru_cache(maxsize=4096)
def _check_attribute(name: str, value: str | None) -> None:
    _check(_TOKEN, name, "attribute name")
    if value is not None:
        _check_text(value, f"value of attribute {name}")


def _is_rtp(proto: str) -> bool:
    return "RTP" in proto.upper().split("/")


@functools.lru_cache(maxsize=1024, typed=True)
def _check_media(
    media_type: str,
    port_count: int,
    proto: str,
    formats: tuple[str, ...],
    information: str | None,
    key: str | None,
    attributes: tuple[Attribute, ...],
) -> None:
    _check(_TOKEN, media_type, "m= media")
    _check_int(port_count, "m= number of ports", 1, 65536)
    _check(_PROTO, proto, "m= proto")
    if not formats:
        raise ValueError("m= needs at least one format")
    rtp = _is_rtp(proto)
    for fmt in formats:
        _check(_TOKEN, fmt, "m= format")
        if rtp and (_PAYLOAD_TYPE.fullmatch(fmt) is None or int(fmt) > 127):
            raise ValueError(f"m= format {_short(fmt)}: {proto} needs a payload type")
    if information is not None:
        _check_text(information, "media i=")
    if key is not None:
        _check_text(key, "media k=")
    # The attributes the Media class interprets are checked here, so that
    # its accessors cannot fail on a model that exists.
    mapped: set[int] = set()
    for attribute in attributes:
        if attribute.name == "rtpmap":
            if attribute.value is None:
                raise ValueError("a=rtpmap needs a value")
            payload_type = _parse_rtpmap(attribute.value).payload_type
            if payload_type in mapped:
                raise ValueError(f"two rtpmap attributes for payload type {payload_type}")
            mapped.add(payload_type)
        elif attribute.name == "ptime":
            ptime = "" if attribute.value is None else attribute.value.strip(" ")
            _check(_PTIME, ptime, "a=ptime")
    _direction_of(attributes, "a media description")


# --- Model ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 4566 section 5.2): who made the session and which version this is.

    ``session_version`` must grow each time the description changes
    (RFC 3264 section 8); :meth:`SessionDescription.with_next_version` does that.
    """

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __post_init__(self) -> None:
        _check_int(self.session_id, "o= sess-id")
        _check_int(self.session_version, "o= sess-version")
        _check_origin(self.username, self.nettype, self.addrtype, self.address)

    def _value(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 4566 section 5.7).

    ``address`` is the host alone; a multicast suffix is kept in ``ttl`` and
    ``count``: ``IN IP4 224.2.1.1/127/3`` has ttl 127 and count 3, and
    ``IN IP6 FF15::101/3`` has count 3 (IPv6 has no TTL here). The suffix is
    only split off for the address types IP4 and IP6; any other address type
    keeps its address whole.
    """

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check_connection(self.nettype, self.addrtype, self.address, self.ttl, self.count)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP6 address`` for an IPv6 literal, else ``IN IP4 address``."""
        return cls("IN", _addrtype_of(address), address)

    @property
    def is_unspecified(self) -> bool:
        """True for 0.0.0.0 or ::, the RFC 2543 way to put a stream on hold (RFC 3264 8.4)."""
        ip = _ip_address(self.address)
        return ip is not None and ip.is_unspecified

    def _value(self) -> str:
        suffix = "" if self.ttl is None else f"/{self.ttl}"
        suffix += "" if self.count is None else f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {self.address}{suffix}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """A ``b=`` line (RFC 4566 section 5.8): a type such as CT, AS or TIAS, and its value.

    CT and AS are in kilobits per second; TIAS (RFC 3890) in bits per second.
    """

    bwtype: str
    value: int

    def __post_init__(self) -> None:
        _check(_TOKEN, self.bwtype, "b= bwtype")
        _check_int(self.value, "b= bandwidth")


@dataclass(frozen=True, slots=True)
class Repeat:
    """An ``r=`` line (RFC 4566 section 5.10), every value in seconds.

    Units on the wire (``7d 1h``) are converted on parsing; output is in seconds.
    """

    interval: int
    duration: int
    offsets: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "offsets", tuple(self.offsets))
        # repeat-interval = POS-DIGIT *DIGIT [fixed-len-time-unit]: never zero
        _check_int(self.interval, "r= repeat interval", 1)
        _check_int(self.duration, "r= active duration")
        if not self.offsets:
            raise ValueError("r= needs at least one offset")
        for offset in self.offsets:
            _check_int(offset, "r= offset")


@dataclass(frozen=True, slots=True)
class Timing:
    """A ``t=`` line with the ``r=`` lines that follow it (RFC 4566 sections 5.9, 5.10).

    Times are NTP seconds; ``Timing()`` is ``t=0 0``, an unbounded session,
    which is what SIP uses (RFC 3264 section 5).
    """

    start: int = 0
    stop: int = 0
    repeats: tuple[Repeat, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "repeats", tuple(self.repeats))
        _check_int(self.start, "t= start time")
        _check_int(self.stop, "t= stop time")


@dataclass(frozen=True, slots=True)
class ZoneAdjustment:
    """One pair of a ``z=`` line (RFC 4566 section 5.11).

    From NTP ``time`` on, the session's repeat times shift by ``offset`` seconds.
    """

    time: int
    offset: int

    def __post_init__(self) -> None:
        _check_int(self.time, "z= adjustment time")
        _check_int(self.offset, "z= offset", -_MAX_NUMBER)


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line (RFC 4566 section 5.13): ``a=name`` (``value`` None) or ``a=name:value``."""

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        _check_attribute(self.name, self.value)

    def _line(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


class Direction(enum.StrEnum):
    """The direction attributes (RFC 4566 section 6, RFC 3264 section 5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """True if the side that wrote this direction sends media."""
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        """True if the side that wrote this direction receives media."""
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other end: sendonly and recvonly swap."""
        if self is Direction.SENDONLY:
            return Direction.RECVONLY
        if self is Direction.RECVONLY:
            return Direction.SENDONLY
        return self


_DIRECTIONS: Final = frozenset(direction.value for direction in Direction)


@dataclass(frozen=True, slots=True)
class RtpMap:
    """An ``a=rtpmap`` value (RFC 4566 section 6): what an RTP payload type carries.

    ``encoding_params`` is the optional third part; for audio it is the number
    of channels (see :attr:`channels`).
    """

    payload_type: int
    encoding_name: str
    clock_rate: int
    encoding_params: str | None = None

    def __post_init__(self) -> None:
        _check_int(self.payload_type, "rtpmap payload type", 0, 127)
        _check(_TOKEN, self.encoding_name, "rtpmap encoding name")
        _check_int(self.clock_rate, "rtpmap clock rate")
        if self.encoding_params is not None:
            _check(_NON_WS, self.encoding_params, "rtpmap encoding parameters")

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        """Read an rtpmap attribute value such as ``96 opus/48000/2``; ParseError if malformed."""
        try:
            return _parse_rtpmap(value)
        except ValueError as exc:
            raise ParseError(f"SDP rtpmap: {exc}", status_hint=400) from exc

    @property
    def channels(self) -> int:
        """Audio channels: the encoding parameters when numeric, else 1 (RFC 4566 section 6)."""
        params = self.encoding_params
        if params is not None and _NUMBER.fullmatch(params):
            return int(params)
        return 1

    @property
    def value(self) -> str:
        """The attribute value, as in ``a=rtpmap:<value>``."""
        value = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return value if self.encoding_params is None else f"{value}/{self.encoding_params}"

    def to_attribute(self) -> Attribute:
        """This mapping as an ``a=rtpmap`` attribute."""
        return Attribute("rtpmap", self.value)


@functools.lru_cache(maxsize=1024)
def _parse_rtpmap(value: str) -> RtpMap:
    # Memoised: "0 PCMU/8000" and its few friends are in every offer and
    # answer, parsed once from the text and checked again by each Media.
    # Blanks around the value are tolerated: some phones pad the line.
    match = _RTPMAP.fullmatch(value.strip(" "))
    if match is None:
        raise ValueError(f"invalid rtpmap {_short(value)}")
    return RtpMap(int(match[1]), match[2], int(match[3]), match[4])


def _static(rows: Iterable[tuple[int, str, int, str | None]]) -> Mapping[int, RtpMap]:
    return MappingProxyType({row[0]: RtpMap(*row) for row in rows})


STATIC_PAYLOAD_TYPES: Final[Mapping[int, RtpMap]] = _static(
    # RFC 3551 section 6, tables 4 (audio) and 5 (video): a payload type listed
    # in an m= line without an rtpmap means this.
    [
        (0, "PCMU", 8000, None),
        (3, "GSM", 8000, None),
        (4, "G723", 8000, None),
        (5, "DVI4", 8000, None),
        (6, "DVI4", 16000, None),
        (7, "LPC", 8000, None),
        (8, "PCMA", 8000, None),
        (9, "G722", 8000, None),
        (10, "L16", 44100, "2"),
        (11, "L16", 44100, None),
        (12, "QCELP", 8000, None),
        (13, "CN", 8000, None),
        (14, "MPA", 90000, None),
        (15, "G728", 8000, None),
        (16, "DVI4", 11025, None),
        (17, "DVI4", 22050, None),
        (18, "G729", 8000, None),
        (25, "CelB", 90000, None),
        (26, "JPEG", 90000, None),
        (28, "nv", 90000, None),
        (31, "H261", 90000, None),
        (32, "MPV", 90000, None),
        (33, "MP2T", 90000, None),
        (34, "H263", 90000, None),
    ]
)
"""RFC 3551's static RTP payload types, payload type -> :class:`RtpMap`."""


def _find(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    for attribute in attributes:
        if attribute.name == name:
            return attribute
    return None


def _direction_of(attributes: tuple[Attribute, ...], where: str) -> Direction | None:
    found = [Direction(a.name) for a in attributes if a.name in _DIRECTIONS]
    if len(found) > 1:
        # RFC 3264 section 5.1 gives a section one direction; guessing which of
        # several was meant could send media to a peer that refused it.
        raise ValueError(f"{where} has more than one direction attribute")
    return found[0] if found else None


def _without_direction(
    attributes: tuple[Attribute, ...], direction: Direction | None
) -> tuple[Attribute, ...]:
    kept = tuple(a for a in attributes if a.name not in _DIRECTIONS)
    return kept if direction is None else (*kept, Attribute(direction.value))


@dataclass(frozen=True, slots=True)
class Media:
    """A media description (RFC 4566 section 5.14): the ``m=`` line and the lines after it.

    ``formats`` are strings as on the wire; for an RTP profile (``RTP/AVP``,
    ``RTP/SAVPF`` ...) they must be payload type numbers 0-127, which
    :attr:`payload_types` gives as integers. ``port_count`` is the optional
    ``/<number of ports>``. A port of 0 rejects or disables the stream
    (RFC 3264 section 6).
    """

    media_type: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int = 1
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _as_tuples(self, ("formats", "connections", "bandwidths", "attributes"))
        _check_int(self.port, "m= port", 0, 65535)
        # The rest is the same in call after call (only the port changes).
        _check_media(
            self.media_type,
            self.port_count,
            self.proto,
            self.formats,
            self.information,
            self.key,
            self.attributes,
        )

    @property
    def is_rtp(self) -> bool:
        """True if the transport protocol is an RTP profile, whose formats are payload types."""
        return _is_rtp(self.proto)

    @property
    def is_rejected(self) -> bool:
        """True if the port is 0: the stream is rejected or disabled (RFC 3264 sections 6, 8.2)."""
        return self.port == 0

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types, in order of preference; empty if not RTP."""
        return tuple(int(fmt) for fmt in self.formats) if self.is_rtp else ()

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Payload type -> :class:`RtpMap` for the formats, in the m= line's order.

        A format without an rtpmap attribute uses RFC 3551's static table
        (0 PCMU/8000, 8 PCMA/8000, 18 G729/8000 ...); a dynamic one without an
        rtpmap is left out. Empty for a non-RTP protocol.
        """
        declared: dict[int, RtpMap] = {}
        for attribute in self.attributes:
            if attribute.name == "rtpmap" and attribute.value is not None:
                rtpmap = RtpMap.parse(attribute.value)
                declared[rtpmap.payload_type] = rtpmap
        result: dict[int, RtpMap] = {}
        for payload_type in self.payload_types:
            rtpmap_or_none = declared.get(payload_type, STATIC_PAYLOAD_TYPES.get(payload_type))
            if rtpmap_or_none is not None:
                result[payload_type] = rtpmap_or_none
        return result

    def fmtp(self, fmt: int | str) -> str | None:
        """The format parameters of ``a=fmtp:<fmt> <parameters>``, or None if there is none.

        ``fmt`` is compared as written in the m= line (``101`` and ``"101"`` match).
        """
        wanted = str(fmt)
        for attribute in self.attributes:
            if attribute.name == "fmtp" and attribute.value is not None:
                head, _, parameters = attribute.value.lstrip(" ").partition(" ")
                if head == wanted:
                    return parameters.strip(" ")
        return None

    @property
    def ptime(self) -> int | None:
        """The ``a=ptime`` packet time in whole milliseconds, or None.

        A decimal value (RFC 8866 section 6.4 allows ``a=ptime:22.5``) is
        rounded to the nearest millisecond, half up.
        """
        attribute = self.attribute("ptime")
        if attribute is None or attribute.value is None:
            return None
        whole, _, fraction = attribute.value.strip(" ").partition(".")
        return int(whole) + (1 if fraction[:1] >= "5" else 0)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute of this section, or None when it has none.

        None means the session-level direction applies; use
        :meth:`SessionDescription.effective_direction` for the resolved value.
        """
        return _direction_of(self.attributes, "a media description")

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called ``name``, or None."""
        return _find(self.attributes, name)

    def attributes_named(self, name: str) -> tuple[Attribute, ...]:
        """Every attribute called ``name``, in order."""
        return tuple(a for a in self.attributes if a.name == name)

    def effective_connection(self, session: SessionDescription) -> Connection | None:
        """This section's first ``c=``, else the session's (RFC 4566 section 5.7)."""
        return self.connections[0] if self.connections else session.connection

    def connection_address(self, session: SessionDescription) -> str | None:
        """The address media goes to: this section's ``c=`` address, else the session's."""
        connection = self.effective_connection(session)
        return None if connection is None else connection.address

    def with_direction(self, direction: Direction | None) -> Media:
        """A copy whose direction attribute is ``direction`` (None: no direction attribute)."""
        return replace(self, attributes=_without_direction(self.attributes, direction))

    @classmethod
    def audio(
        cls,
        port: int,
        codecs: Iterable[int | RtpMap] = (0, 8),
        *,
        telephone_event: int | None = 101,
        ptime: int | None = 20,
        direction: Direction | None = None,
        proto: str = "RTP/AVP",
        connection: Connection | None = None,
    ) -> Media:
        """An audio section offering ``codecs`` (static payload types or RtpMaps), in order.

        With ``telephone_event`` set, that payload type carries RFC 4733 DTMF
        (``telephone-event/8000``, events ``0-16``). Every codec gets an rtpmap
        line, static ones too, since many peers look only at those.
        """
        rtpmaps: list[RtpMap] = []
        for codec in codecs:
            if isinstance(codec, RtpMap):
                rtpmaps.append(codec)
                continue
            static = STATIC_PAYLOAD_TYPES.get(codec)
            if static is None:
                raise ValueError(f"payload type {codec} is not static: pass an RtpMap")
            rtpmaps.append(static)
        attributes = [rtpmap.to_attribute() for rtpmap in rtpmaps]
        formats = [str(rtpmap.payload_type) for rtpmap in rtpmaps]
        if telephone_event is not None:
            formats.append(str(telephone_event))
            attributes.append(RtpMap(telephone_event, "telephone-event", 8000).to_attribute())
            attributes.append(Attribute("fmtp", f"{telephone_event} 0-16"))
        if ptime is not None:
            attributes.append(Attribute("ptime", str(ptime)))
        if direction is not None:
            attributes.append(Attribute(direction.value))
        return cls(
            "audio",
            port,
            proto,
            tuple(formats),
            connections=() if connection is None else (connection,),
            attributes=tuple(attributes),
        )

    def _lines(self) -> Iterator[str]:
        port = str(self.port) if self.port_count == 1 else f"{self.port}/{self.port_count}"
        yield f"m={self.media_type} {port} {self.proto} {' '.join(self.formats)}"
        if self.information is not None:
            yield f"i={self.information}"
        for connection in self.connections:
            yield f"c={connection._value()}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth.bwtype}:{bandwidth.value}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield attribute._line()


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP (RFC 4566 section 5): the session-level lines and the media sections.

    ``version`` is the ``v=`` line, always 0. ``timings`` must hold at least
    one ``t=`` (``Timing()``, ``t=0 0``, by default).
    """

    origin: Origin
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    zone_adjustments: tuple[ZoneAdjustment, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        _as_tuples(
            self,
            (
                "emails",
                "phones",
                "bandwidths",
                "timings",
                "zone_adjustments",
                "attributes",
                "media",
            ),
        )
        _check_int(self.version, "v= (only version 0 exists)", 0, 0)
        if not self.timings:
            raise ValueError("an SDP needs at least one t= line")
        _check_session(
            self.session_name, self.information, self.uri, self.key, self.emails, self.phones
        )
        _direction_of(self.attributes, "the session description")

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Read an SDP; raise ParseError (status_hint 400) if it is not one we accept.

        See the module documentation for what is tolerated.
        """
        lines, clean = _records(data)
        reader = _Reader(clean)
        for number, line in enumerate(lines, start=1):
            reader.feed(number, line)
        return reader.finish()

    def to_bytes(self) -> bytes:
        """The SDP with CRLF line ends, lines in the order RFC 4566 section 5 mandates."""
        return ("\r\n".join(self._lines()) + "\r\n").encode("utf-8")

    def __bytes__(self) -> bytes:
        """Same as :meth:`to_bytes`."""
        return self.to_bytes()

    @classmethod
    def new(
        cls,
        address: str,
        *,
        media: Iterable[Media] = (),
        session_id: int | None = None,
        session_version: int | None = None,
        username: str = "-",
        session_name: str = "-",
        attributes: Iterable[Attribute] = (),
    ) -> SessionDescription:
        """A fresh description for media at ``address`` (IPv4 or IPv6), with ``t=0 0``.

        The o= and the session c= lines both carry ``address``. ``session_id``
        defaults to a random 62-bit number, unique as RFC 4566 section 5.2 asks
        without reading a clock; ``session_version`` defaults to ``session_id``.
        """
        if session_id is None:
            session_id = secrets.randbits(62)
        if session_version is None:
            session_version = session_id
        connection = Connection.for_address(address)
        return cls(
            origin=Origin(
                username, session_id, session_version, "IN", connection.addrtype, address
            ),
            session_name=session_name,
            connection=connection,
            attributes=tuple(attributes),
            media=tuple(media),
        )

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, or None when there is none."""
        return _direction_of(self.attributes, "the session description")

    def effective_direction(self, media: Media) -> Direction:
        """The direction of ``media``: its own, else the session's, else sendrecv (RFC 3264 5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def with_direction(self, direction: Direction | None) -> SessionDescription:
        """A copy whose session-level direction is ``direction`` (None: no attribute)."""
        return replace(self, attributes=_without_direction(self.attributes, direction))

    def with_next_version(self) -> SessionDescription:
        """A copy with the o= session version one higher, as a changed offer needs (RFC 3264 8)."""
        origin = replace(self.origin, session_version=self.origin.session_version + 1)
        return replace(self, origin=origin)

    def attribute(self, name: str) -> Attribute | None:
        """The first session-level attribute called ``name``, or None."""
        return _find(self.attributes, name)

    def attributes_named(self, name: str) -> tuple[Attribute, ...]:
        """Every session-level attribute called ``name``, in order."""
        return tuple(a for a in self.attributes if a.name == name)

    def _lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin._value()}"
        yield f"s={self.session_name}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.uri is not None:
            yield f"u={self.uri}"
        for email in self.emails:
            yield f"e={email}"
        for phone in self.phones:
            yield f"p={phone}"
        if self.connection is not None:
            yield f"c={self.connection._value()}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth.bwtype}:{bandwidth.value}"
        for timing in self.timings:
            yield f"t={timing.start} {timing.stop}"
            for repeat in timing.repeats:
                numbers = (repeat.interval, repeat.duration, *repeat.offsets)
                yield "r=" + " ".join(str(n) for n in numbers)
        if self.zone_adjustments:
            yield "z=" + " ".join(f"{z.time} {z.offset}" for z in self.zone_adjustments)
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield attribute._line()
        for media in self.media:
            yield from media._lines()


# --- Parser -------------------------------------------------------------------------


def _records(data: bytes | str) -> tuple[list[str], bool]:
    # The lines, and whether every one is known to be text already (no NUL,
    # no CR but the line ends, no lone surrogate): then the lines need not
    # be checked one by one. Decoded bytes hold no surrogates.
    if isinstance(data, str):
        text = data
        no_surrogates = text.isascii()
    else:
        no_surrogates = True
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("SDP is not UTF-8", status_hint=400) from exc
    if not text.strip():
        raise ParseError("SDP is empty", status_hint=400)
    # Split on LF only: str.splitlines() would also split on VT, FF, NEL and
    # U+2028, which are legal inside SDP text.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip(" \t"):
        lines.pop()
    if not lines:
        raise ParseError("SDP is empty", status_hint=400)
    clean = no_surrogates and "\0" not in text and text.count("\r") == text.count("\r\n")
    return lines, clean


def _fields(value: str) -> list[str]:
    return [field for field in value.split(" ") if field]


def _parse_origin(value: str) -> Origin:
    fields = _fields(value)
    if len(fields) != 6:
        raise ValueError(
            "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>"
        )
    username, session_id, session_version, nettype, addrtype, address = fields
    return Origin(
        username,
        _number(_NUMBER, session_id, "o= sess-id"),
        _number(_NUMBER, session_version, "o= sess-version"),
        nettype,
        addrtype,
        address,
    )


def _parse_connection(value: str) -> Connection:
    fields = _fields(value)
    if len(fields) != 3:
        raise ValueError("c= needs <nettype> <addrtype> <connection-address>")
    nettype, addrtype, address = fields
    ttl: int | None = None
    count: int | None = None
    if addrtype in ("IP4", "IP6") and "/" in address:
        address, *suffix = address.split("/")
        if addrtype == "IP4" and len(suffix) <= 2:
            ttl = _number(_TTL, suffix[0], "c= TTL")
            if len(suffix) == 2:
                count = _number(_COUNT, suffix[1], "c= address count")
        elif addrtype == "IP6" and len(suffix) == 1:
            count = _number(_COUNT, suffix[0], "c= address count")
        else:
            raise ValueError(f"invalid c= address suffix {_short('/'.join(suffix))}")
    return Connection(nettype, addrtype, address, ttl, count)


def _parse_bandwidth(value: str) -> Bandwidth:
    match = _BANDWIDTH.fullmatch(value.strip(" "))
    if match is None:
        raise ValueError(f"b= needs <bwtype>:<bandwidth>, not {_short(value)}")
    return Bandwidth(match[1], int(match[2]))


def _parse_timing(value: str) -> Timing:
    fields = _fields(value)
    if len(fields) != 2:
        raise ValueError("t= needs <start-time> <stop-time>")
    return Timing(_number(_NUMBER, fields[0], "t= start"), _number(_NUMBER, fields[1], "t= stop"))


def _typed_time(text: str, what: str, *, signed: bool = False) -> int:
    match = _TYPED_TIME.fullmatch(text)
    if match is None or (match[1] and not signed):
        raise ValueError(f"invalid {what}: {_short(text)}")
    seconds = int(match[2]) * _UNIT_SECONDS[match[3]]
    return -seconds if match[1] else seconds


def _parse_repeat(value: str) -> Repeat:
    fields = _fields(value)
    if len(fields) < 3:
        raise ValueError("r= needs <repeat interval> <active duration> <offsets>")
    interval, duration, *offsets = fields
    return Repeat(
        _typed_time(interval, "r= repeat interval"),
        _typed_time(duration, "r= active duration"),
        tuple(_typed_time(offset, "r= offset") for offset in offsets),
    )


def _parse_zones(value: str) -> tuple[ZoneAdjustment, ...]:
    fields = _fields(value)
    if not fields or len(fields) % 2:
        raise ValueError("z= needs pairs of <adjustment time> <offset>")
    return tuple(
        ZoneAdjustment(
            _number(_NUMBER, fields[i], "z= adjustment time"),
            _typed_time(fields[i + 1], "z= offset", signed=True),
        )
        for i in range(0, len(fields), 2)
    )


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not colon:
        # Blanks after a flag ("a=sendrecv ") are seen in the wild.
        return Attribute(name.rstrip(" \t"))
    return Attribute(name, rest)


def _split_line(line: str, clean: bool = False) -> tuple[str, str]:
    # RFC 4566 section 5: <type>=<value>, <type> exactly one case-significant
    # character, no whitespace on either side of "=".
    if len(line) < 2 or line[1] != "=":
        raise ValueError(f"not a <type>=<value> line: {_short(line)}")
    letter, value = line[0], line[2:]
    if letter not in _KNOWN_LETTERS:
        raise ValueError(f"unknown type letter {letter!r}: RFC 4566 section 5 drops the SDP")
    if not clean:
        _check_text(value, f"{letter}= value (NUL, CR or a lone surrogate)")
    return letter, value


class _MediaLines:
    """The lines of one media section, gathered until the section ends."""

    def __init__(self, number: int, value: str) -> None:
        self.number = number
        fields = _fields(value)
        if len(fields) < 4:
            raise ValueError("m= needs <media> <port> <proto> and at least one <fmt>")
        port = _PORT.fullmatch(fields[1])
        if port is None:
            raise ValueError(f"invalid m= port {_short(fields[1])}")
        self.media_type = fields[0]
        self.port = int(port[1])
        self.port_count = 1 if port[2] is None else int(port[2])
        self.proto = fields[2]
        self.formats = tuple(fields[3:])
        self.seen: set[str] = set()
        self.information: str | None = None
        self.connections: list[Connection] = []
        self.bandwidths: list[Bandwidth] = []
        self.key: str | None = None
        self.attributes: list[Attribute] = []

    def feed(self, letter: str, value: str) -> None:
        if letter not in _MEDIA_LETTERS:
            raise ValueError(f"{letter}= is not allowed in a media description")
        if letter in _MEDIA_ONCE:
            if letter in self.seen:
                raise ValueError(f"more than one {letter}= line in a media description")
            self.seen.add(letter)
        if letter == "i":
            self.information = value
        elif letter == "c":
            self.connections.append(_parse_connection(value))
        elif letter == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif letter == "k":
            self.key = value
        else:
            self.attributes.append(_parse_attribute(value))

    def build(self) -> Media:
        try:
            return Media(
                self.media_type,
                self.port,
                self.proto,
                self.formats,
                port_count=self.port_count,
                information=self.information,
                connections=tuple(self.connections),
                bandwidths=tuple(self.bandwidths),
                key=self.key,
                attributes=tuple(self.attributes),
            )
        except ValueError as exc:
            raise ParseError(
                f"SDP media description at line {self.number}: {exc}", status_hint=400
            ) from exc


class _Reader:
    """Reads an SDP line by line, enforcing the order rules, then builds the model."""

    def __init__(self, clean: bool = False) -> None:
        # True when the lines are known to hold nothing but text (_records).
        self.clean = clean
        self.previous = ""
        self.seen: set[str] = set()
        self.origin: Origin | None = None
        self.session_name: str | None = None
        self.information: str | None = None
        self.uri: str | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.connection: Connection | None = None
        self.bandwidths: list[Bandwidth] = []
        self.timings: list[Timing] = []
        self.zone_adjustments: tuple[ZoneAdjustment, ...] = ()
        self.key: str | None = None
        self.attributes: list[Attribute] = []
        self.media: list[Media] = []
        self.current: _MediaLines | None = None

    def feed(self, number: int, line: str) -> None:
        try:
            self.previous = self._line(number, line)
        except ValueError as exc:
            raise ParseError(f"SDP line {number}: {exc}", status_hint=400) from exc

    def _line(self, number: int, line: str) -> str:
        letter, value = _split_line(line, self.clean)
        if number == 1:
            if letter != "v":
                raise ValueError("an SDP starts with v=")
            if _number(_VERSION, value, "v=") != 0:
                raise ValueError(f"SDP version {_short(value)} is not 0")
        elif letter == "v":
            raise ValueError("v= is only allowed as the first line")
        elif letter == "m":
            self._close_media()
            self.current = _MediaLines(number, value)
        elif self.current is not None:
            self.current.feed(letter, value)
        else:
            self._session(letter, value)
        return letter

    def _session(self, letter: str, value: str) -> None:
        if letter in _SESSION_ONCE:
            if letter in self.seen:
                raise ValueError(f"more than one {letter}= line at session level")
            self.seen.add(letter)
        match letter:
            case "o":
                self.origin = _parse_origin(value)
            case "s":
                self.session_name = value
            case "i":
                self.information = value
            case "u":
                self.uri = value
            case "e":
                self.emails.append(value)
            case "p":
                self.phones.append(value)
            case "c":
                self.connection = _parse_connection(value)
            case "b":
                self.bandwidths.append(_parse_bandwidth(value))
            case "t":
                self.timings.append(_parse_timing(value))
            case "r":
                # A repeat belongs to the t= just before it (RFC 4566 5.10).
                if self.previous not in ("t", "r"):
                    raise ValueError("r= must follow a t= line")
                timing = self.timings[-1]
                repeats = (*timing.repeats, _parse_repeat(value))
                self.timings[-1] = replace(timing, repeats=repeats)
            case "z":
                self.zone_adjustments = _parse_zones(value)
            case "k":
                self.key = value
            case _:
                self.attributes.append(_parse_attribute(value))

    def _close_media(self) -> None:
        if self.current is not None:
            self.media.append(self.current.build())
            self.current = None

    def finish(self) -> SessionDescription:
        self._close_media()
        if self.origin is None:
            raise ParseError("SDP has no o= line", status_hint=400)
        if self.session_name is None:
            raise ParseError("SDP has no s= line", status_hint=400)
        if not self.timings:
            raise ParseError("SDP has no t= line", status_hint=400)
        try:
            return SessionDescription(
                origin=self.origin,
                session_name=self.session_name,
                information=self.information,
                uri=self.uri,
                emails=tuple(self.emails),
                phones=tuple(self.phones),
                connection=self.connection,
                bandwidths=tuple(self.bandwidths),
                timings=tuple(self.timings),
                zone_adjustments=self.zone_adjustments,
                key=self.key,
                attributes=tuple(self.attributes),
                media=tuple(self.media),
            )
        except ValueError as exc:
            raise ParseError(f"SDP session description: {exc}", status_hint=400) from exc
