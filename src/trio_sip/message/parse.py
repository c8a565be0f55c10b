"""Parsing SIP messages from bytes (RFC 3261 sections 7 and 18.3).

The parser does the least work that yields a correct message: it splits the
start line and the header lines (unfolding continuation lines) and frames the
body by Content-Length. Header values are parsed into typed views only when
asked for. Decoding uses UTF-8 with ``surrogateescape`` so any byte sequence
survives a parse/serialise round trip unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ..errors import ParseError
from ._text import TOKEN_RE
from .headers import Headers, canonical_name
from .model import KNOWN_METHODS, Request, Response
from .uri import SCHEME_RE

__all__ = ["ParseLimits", "DEFAULT_LIMITS", "parse_message", "parse_head"]


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds that keep a hostile peer from making the parser do unbounded work."""

    #: Largest message accepted (a UDP datagram can hold 65,535 bytes).
    max_message_size: int = 65535
    #: Most header lines (after unfolding) in one message.
    max_headers: int = 256
    #: Longest header line (after unfolding), in characters.
    max_line_length: int = 16384


DEFAULT_LIMITS: Final = ParseLimits()

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
_VERSION_RE: Final = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")
# Status-Code = 3DIGIT ; Reason-Phrase = *(reserved / unreserved / escaped / UTF8 / SP / HTAB)
_STATUS_RE: Final = re.compile(r"[1-6][0-9][0-9]")
_KNOWN_SCHEMES: Final = frozenset({"sip", "sips", "tel"})
# header-name = token ; HCOLON = *( SP / HTAB ) ":" SWS
_WS: Final = " \t"
# Names seen in real traffic, accepted without running the token regex.
_GOOD_NAMES: dict[str, str] = {}
_GOOD_NAMES_MAX: Final = 4096
# One string object per good name, shared by every message that spells it so:
# a message kept for long (the INVITE of a held call) holds no copies.
_SPELLINGS: dict[str, str] = {}


def _split_head(data: bytes) -> tuple[str, int]:
    """The decoded head and the offset where the body starts."""
    # The first line end says which line ends the message uses. Bare LF line
    # ends are illegal but common from hand-written tools; accept them. Mixed
    # line ends are refused by parse_head (a bare CR or LF inside the head).
    nl = data.find(b"\n")
    if nl > 0 and data[nl - 1] == 13:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return data[:end].decode("utf-8", "surrogateescape"), end + 4
    else:
        # LF only: the first empty line ends the head, even if the body
        # happens to hold a CRLFCRLF.
        end = data.find(b"\n\n")
        if end >= 0:
            return data[:end].decode("utf-8", "surrogateescape"), end + 2
    raise ParseError("no empty line after the header section")


def parse_head(head: str, limits: ParseLimits = DEFAULT_LIMITS) -> Request | Response:
    """Parse a decoded start line and header section (no body, no final CRLF)."""
    if "\r" in head:
        lines = head.split("\r\n")
        # A CR or LF that ends no line would sit inside a header value; peers
        # that split lines differently would then read different headers.
        # (Joining the lines and looking for CR and LF is cheaper than
        # counting both in the head.)
        joined = "".join(lines)
        if "\r" in joined or "\n" in joined:
            raise ParseError("bare CR or LF in header section")
    else:
        lines = head.split("\n")
    # RFC 3261 section 7.5: ignore CRLFs before the start line.
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first >= len(lines):
        raise ParseError("empty message")
    msg = _parse_start_line(lines[first])
    rest = lines[first + 1 :]
    if len(rest) > limits.max_headers:
        raise ParseError(f"more than {limits.max_headers} header lines")
    if "\n " in head or "\n\t" in head:
        rest = _unfold(rest)
    max_line = limits.max_line_length
    if len(head) > max_line and max(map(len, rest), default=0) > max_line:
        raise ParseError(f"header line longer than {max_line}")
    # The common case runs in comprehensions (C loops): names seen before
    # map to their key at once; any other line takes the careful path.
    triples = [line.partition(":") for line in rest]
    good = _GOOD_NAMES.get
    keys = [good(name) if colon else None for name, colon, _ in triples]
    spelling = _SPELLINGS.get
    names = [spelling(name, name) for name, _, _ in triples]
    values = [value.strip(_WS) for _, _, value in triples]
    if None in keys:
        for i, key in enumerate(keys):
            if key is None:
                keys[i], names[i] = _check_header_name(triples[i])
    msg.headers = Headers._from_parsed(keys, names, values)  # type: ignore[arg-type]
    return msg


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines to their header (RFC 3261 section 7.3.1)."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise ParseError("continuation line before any header")
            joined = f"{out[-1].rstrip(_WS)} {line.strip(_WS)}"
            out[-1] = joined.rstrip(_WS)
        else:
            out.append(line)
    return out


def _check_header_name(triple: tuple[str, str, str]) -> tuple[str, str]:
    name, colon, _ = triple
    if not colon:
        raise ParseError(f"header line without colon: {name[:60]!r}")
    stripped = name.rstrip(_WS)
    if not TOKEN_RE.fullmatch(stripped):
        raise ParseError(f"bad header name {name[:60]!r}")
    key = canonical_name(stripped)
    if stripped == name and len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES[name] = key
        _SPELLINGS[name] = name
    return key, stripped


def _parse_start_line(line: str) -> Request | Response:
    if line[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
        version, sp1, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not sp1 or not _STATUS_RE.fullmatch(code):
            raise ParseError(f"bad status line {line[:80]!r}")
        if version != "SIP/2.0":
            _check_version(version, line, status_hint=400)
        return Response._parsed(int(code), reason)
    # Request-Line = Method SP Request-URI SP SIP-Version CRLF
    parts = line.split(" ")
    if len(parts) != 3:
        raise ParseError(f"bad request line {line[:80]!r}")
    method, uri, version = parts
    if method not in KNOWN_METHODS and not TOKEN_RE.fullmatch(method):
        raise ParseError(f"bad method in request line {line[:80]!r}")
    if version != "SIP/2.0":
        _check_version(version, line, status_hint=505)
    scheme, colon, _ = uri.partition(":")
    if not colon:
        raise ParseError(f"bad Request-URI {uri[:80]!r}")
    if scheme not in _KNOWN_SCHEMES and scheme.lower() not in _KNOWN_SCHEMES:
        # 416 is for a URI we cannot handle; text that is no URI at all, such
        # as a name-addr "<sip:...>" (RFC 4475 section 3.1.2.7), is a 400.
        if not SCHEME_RE.fullmatch(scheme):
            raise ParseError(f"bad Request-URI {uri[:80]!r}")
        raise ParseError(f"unsupported URI scheme {scheme[:64]!r}", status_hint=416)
    return Request._parsed(method, uri)


def _check_version(version: str, line: str, *, status_hint: int) -> None:
    if version == "SIP/2.0":
        return
    m = _VERSION_RE.fullmatch(version)
    if m is None:
        raise ParseError(f"bad SIP version in {line[:80]!r}")
    if (int(m.group(1)), int(m.group(2))) != (2, 0):
        raise ParseError(f"SIP version {version!r} not supported", status_hint=status_hint)


def parse_message(
    data: bytes, *, limits: ParseLimits = DEFAULT_LIMITS, datagram: bool = True
) -> Request | Response:
    """Parse one SIP message from ``data``.

    With ``datagram=True`` (UDP), ``data`` is one datagram: a Content-Length
    larger than the body is an error and bytes after the body are discarded
    (RFC 3261 section 18.3); without Content-Length the body runs to the end.
    With ``datagram=False`` the caller (the stream framer) has already cut
    exactly one message, whose body must match Content-Length.

    Raises :class:`~trio_sip.errors.ParseError` for anything malformed, with
    the status a server should answer with in ``status_hint``.
    """
    if len(data) > limits.max_message_size:
        raise ParseError(f"message larger than {limits.max_message_size} bytes", status_hint=413)
    if data[:1] in (b"\r", b"\n"):
        # RFC 3261 section 7.5: CRLFs before the start line are ignored.
        data = data.lstrip(b"\r\n")
    head, body_start = _split_head(data)
    msg = parse_head(head, limits)
    length = msg.content_length
    have = len(data) - body_start
    if length is None:
        if not datagram and have:
            raise ParseError("stream message without Content-Length")
        length = have
    elif length > have:
        raise ParseError(f"Content-Length {length} exceeds the {have} bytes of body")
    end = body_start + length
    msg._body = data[body_start:end]
    # Keep the wire bytes: an unchanged message is forwarded without re-serialising.
    msg._set_raw(data if end == len(data) else data[:end])
    return msg
