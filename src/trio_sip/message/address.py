"""name-addr / addr-spec values: From, To, Contact, Route, Record-Route ...

RFC 3261 section 20.10 and 25.1::

    name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
    display-name = *(token LWS)/ quoted-string

In the addr-spec form (no angle brackets) the URI cannot carry parameters:
``;tag=...`` after it belongs to the header (section 20.10).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from ..errors import ParseError
from ._text import WS, find_unquoted, quote, unquote
from .params import EMPTY_PARAMS, Params
from .uri import URI

__all__ = ["NameAddr"]

_TOKEN_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~ "
)
_DISPLAY_CHARS = _TOKEN_CHARS | {"\t"}


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A URI with an optional display name and header parameters (tag, expires, q ...)."""

    uri: URI
    display_name: str | None = None
    params: Params = EMPTY_PARAMS

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse one name-addr or addr-spec value (not a comma list).

        Like URIs, the values are immutable and come back: the From of a
        dialog's every request, the To of its ACK and BYE, a peer's Contact
        call after call. The most recent few thousand texts share their result.
        """
        if cls is NameAddr:
            return _parse_name_addr_memo(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> NameAddr:
        text = text.strip(WS)
        if not text:
            raise ParseError("empty address")
        lt = find_unquoted(text, "<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"missing '>' in {text!r}")
            display = text[:lt].strip(WS)
            uri = URI.parse(text[lt + 1 : gt].strip(WS))
            rest = text[gt + 1 :].strip(WS)
            name: str | None
            if not display:
                name = None
            elif display[0] == '"':
                name = unquote(display)
            else:
                # display-name = *(token LWS): tokens apart by SP or HTAB.
                if not set(display) <= _DISPLAY_CHARS:
                    raise ParseError(f"bad display name {display!r}")
                name = " ".join(display.split())
            if rest and rest[0] != ";":
                raise ParseError(f"junk after '>' in {text!r}")
            return cls(uri, name, Params.parse(rest) if rest else EMPTY_PARAMS)
        semi = text.find(";")
        if semi >= 0:
            uri_text, ptext = text[:semi], text[semi:]
            params = Params.parse(ptext)
        else:
            uri_text, params = text, EMPTY_PARAMS
        uri_text = uri_text.strip(WS)
        if " " in uri_text or "\t" in uri_text:
            raise ParseError(f"unquoted display name needs <...> around the URI: {text!r}")
        if "?" in uri_text:
            # RFC 3261 section 20.10: a URI with a '?' (or ',' or ';') must be
            # in <...>; without them the headers part is ambiguous (RFC 4475
            # section 3.1.2.13).
            raise ParseError(f"a URI with headers needs <...> around it: {text!r}")
        return cls(URI.parse(uri_text), None, params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From and To, RFC 3261 section 19.3), or None."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with ``tag`` set."""
        return dataclasses.replace(self, params=self.params.with_param("tag", tag))

    def with_params(self, **params: str | None) -> NameAddr:
        """A copy with header parameters set (``None`` makes a flag)."""
        new = self.params
        for name, value in params.items():
            new = new.with_param(name, value)
        return dataclasses.replace(self, params=new)

    def __str__(self) -> str:
        # Always the bracket form: it is never ambiguous (section 20.10).
        if self.display_name is None:
            return f"<{self.uri}>{self.params}"
        name = self.display_name
        # Unquoted only when it reads back the same: tokens with single spaces
        # (the parser folds runs of LWS between tokens into one space).
        plain = name and set(name) <= _TOKEN_CHARS and " ".join(name.split()) == name
        shown = name if plain else quote(name)
        return f"{shown} <{self.uri}>{self.params}"


@functools.lru_cache(maxsize=4096)
def _parse_name_addr_memo(text: str) -> NameAddr:
    return NameAddr._parse(text)
