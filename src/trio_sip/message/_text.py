"""Low-level text helpers of the SIP grammar (RFC 3261 section 25.1).

Private: the typed views (URI, Via, name-addr, CSeq) are built on these.
Everything here works on ``str``; the parser decodes a message's header
section once with ``surrogateescape`` so that any byte survives a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from ..errors import ParseError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")

# LWS = [*WSP CRLF] 1*WSP ; after unfolding only WSP remains
WS: Final = " \t"


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return TOKEN_RE.fullmatch(text) is not None


def split_commas(value: str) -> list[str]:
    """Split a header value on the commas that separate its elements.

    Commas inside quoted strings, ``<...>`` and comments are not separators
    (RFC 3261 section 7.3.1). Empty elements are dropped.
    """
    if '"' not in value and "<" not in value and "(" not in value:
        # The common case, at C speed.
        return [part.strip(WS) for part in value.split(",") if part.strip(WS)]
    parts = _split_commas(value, comments=True)
    if parts is None:
        # A '(' that never closes opened no comment: it belongs to a URI
        # (parentheses are unreserved characters there, as in tel numbers).
        parts = _split_commas(value, comments=False)
        assert parts is not None
    return parts


def _split_commas(value: str, *, comments: bool) -> list[str] | None:
    # None when ``comments`` is set and a comment is left open at the end.
    parts: list[str] = []
    start = 0
    in_quote = False
    angle = 0
    paren = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == "(" and comments and not angle:
            # No comment inside <...>: there a '(' is part of the URI.
            paren += 1
        elif ch == ")" and paren:
            paren -= 1
        elif ch == "," and not angle and not paren:
            part = value[start:i].strip(WS)
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    if in_quote:
        raise ParseError(f"unterminated quoted string in {value!r}")
    if paren:
        return None
    part = value[start:].strip(WS)
    if part:
        parts.append(part)
    return parts


def find_unquoted(text: str, char: str, start: int = 0) -> int:
    """Index of the first ``char`` at or after ``start`` outside a quoted string, or -1."""
    if '"' not in text:
        return text.find(char, start)
    in_quote = False
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == char:
            return i
        i += 1
    return -1


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved.

    quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ParseError(f"not a quoted string: {text!r}")
    inner = text[1:-1]
    if "\\" not in inner:
        if '"' in inner:
            raise ParseError(f"unescaped quote inside quoted string: {text!r}")
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            if i + 1 >= len(inner):
                raise ParseError(f"dangling backslash in quoted string: {text!r}")
            out.append(inner[i + 1])
            i += 2
            continue
        if ch == '"':
            raise ParseError(f"unescaped quote inside quoted string: {text!r}")
        out.append(ch)
        i += 1
    return "".join(out)


# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
# What may not stand in qdtext as it is: backslash, DQUOTE and the controls
# other than SP and HTAB. CR and LF cannot be written at all.
_NEEDS_ESCAPE: Final = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def quote(text: str) -> str:
    """``text`` as a quoted-string, escaping what qdtext cannot hold.

    Raises ValueError for CR or LF, which no quoted-string can carry (writing
    them would split the header line).
    """
    if "\r" in text or "\n" in text:
        raise ValueError(f"CR or LF cannot be quoted: {text!r}")
    return '"' + _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), text) + '"'


def refuse_line_breaks(text: str, what: str) -> None:
    """Raise ParseError (status hint 500) if ``text`` holds a CR or LF.

    For what goes on a line of an outgoing message (a header's name or
    value, a method, a reason phrase): a line break there would end the
    line and start another, so text from elsewhere (a caller's header, a
    display name from a form) could write headers of its own.
    """
    if "\r" in text or "\n" in text:
        raise ParseError(f"{what} cannot hold CR or LF: {text!r}", status_hint=500)


def iter_semicolon_parts(text: str) -> Iterator[str]:
    """Split on ``;`` outside quoted strings (generic-param lists may quote)."""
    if '"' not in text:
        yield from text.split(";")
        return
    start = 0
    while True:
        idx = find_unquoted(text, ";", start)
        if idx < 0:
            yield text[start:]
            return
        yield text[start:idx]
        start = idx + 1
