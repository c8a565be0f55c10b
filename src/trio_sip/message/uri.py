"""SIP, SIPS and tel URIs (RFC 3261 section 19.1, RFC 3966).

A :class:`URI` keeps every component exactly as written (escapes included)
so that ``str(URI.parse(s)) == s`` for a well-formed ``s``; comparison follows
RFC 3261 section 19.1.4 and decodes escapes first (but for those of reserved
characters, which differ from the characters themselves).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote as _pct_decode

from ..errors import ParseError
from .params import EMPTY_PARAMS, Params

__all__ = ["URI", "URIParams"]

# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
# (Underscores are not in the ABNF but occur in real host names; accept them.)
_HOSTNAME_RE: Final = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9\-_]*[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9\-_]*[A-Za-z0-9_])?\.?"
)
# IPv6reference = "[" IPv6address "]"
_IPV6_RE: Final = re.compile(r"[0-9A-Fa-f:.]+")
# port = 1*DIGIT
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
_USER_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# pname = 1*paramchar ; pvalue = 1*paramchar
# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
_PARAMCHARS_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# RFC 3261 section 19.1.4: these parameters must match when either side has them.
_MUST_MATCH: Final = ("user", "ttl", "method", "maddr", "transport")

SIP_SCHEMES: Final = frozenset({"sip", "sips"})


def _check_host(host: str, text: str) -> str:
    if host.startswith("["):
        if not host.endswith("]") or not _IPV6_RE.fullmatch(host[1:-1]):
            raise ParseError(f"bad IPv6 reference in URI {text!r}")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ParseError(f"bad IPv6 address in URI {text!r}") from None
        return host[1:-1]
    if not _HOSTNAME_RE.fullmatch(host):
        raise ParseError(f"bad host {host!r} in URI {text!r}")
    return host


def split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); the host comes back without brackets.

    ``text`` is what the error message quotes. The same few host:port
    values come back in packet after packet, so results are memoised.
    """
    try:
        return _split_hostport_memo(hostport)
    except ParseError:
        return _split_hostport(hostport, text)


@functools.lru_cache(maxsize=4096)
def _split_hostport_memo(hostport: str) -> tuple[str, int | None]:
    return _split_hostport(hostport, hostport)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {text!r}")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ParseError(f"junk after IPv6 reference in {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
    port: int | None = None
    if port_text is not None:
        if not _PORT_RE.fullmatch(port_text) or int(port_text) > 65535:
            raise ParseError(f"bad port in {text!r}")
        port = int(port_text)
    if not host:
        raise ParseError(f"empty host in {text!r}")
    return _check_host(host, text), port


def format_host(host: str) -> str:
    """A host as it stands in a URI or Via: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True, eq=False)
class URI:
    """A SIP, SIPS or tel URI; other schemes keep their text in ``opaque``.

    Components are kept as written, escapes included. ``host`` has no
    brackets (an IPv6 address is plain); ``port`` is ``None`` when absent.
    For tel URIs the number stands in ``user`` and ``host`` is empty.
    """

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = EMPTY_PARAMS
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse a URI; raise :class:`ParseError` (400) when malformed.

        URIs are immutable and the same ones come back in packet after
        packet (a proxy's Request-URIs, a dialog's Contact), so the results
        of the most recent few thousand texts are shared.
        """
        if cls is URI:
            return _parse_uri_memo(text)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> URI:
        scheme, colon, rest = text.partition(":")
        if not colon or not SCHEME_RE.fullmatch(scheme):
            raise ParseError(f"not a URI: {text!r}")
        scheme = scheme.lower()
        if scheme in SIP_SCHEMES:
            return cls._parse_sip(scheme, rest, text)
        if scheme == "tel":
            number, _, ptext = rest.partition(";")
            if not number:
                raise ParseError(f"empty tel URI: {text!r}")
            return cls(scheme, user=number, params=_parse_uri_params(ptext, text))
        if not rest:
            raise ParseError(f"empty URI after scheme: {text!r}")
        return cls(scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str, text: str) -> URI:
        user: str | None = None
        password: str | None = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            user_text, pcolon, pw = userinfo.partition(":")
            # A ';' or '?' may only appear in the user part (user-unreserved).
            if not _USER_RE.fullmatch(user_text):
                raise ParseError(f"bad user part in URI {text!r}")
            user = user_text
            if pcolon:
                if not _PASSWORD_RE.fullmatch(pw):
                    raise ParseError(f"bad password in URI {text!r}")
                password = pw
        headers: tuple[tuple[str, str], ...] = ()
        qmark = rest.find("?")
        if qmark >= 0:
            rest, htext = rest[:qmark], rest[qmark + 1 :]
            headers = _parse_uri_headers(htext, text)
        semi = rest.find(";")
        if semi >= 0:
            hostport, ptext = rest[:semi], rest[semi + 1 :]
            params = _parse_uri_params(ptext, text)
        else:
            hostport, params = rest, EMPTY_PARAMS
        host, port = split_hostport(hostport, text)
        return cls(scheme, host, user, password, port, params, headers)

    # ----- derived values -------------------------------------------------

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs."""
        return self.scheme in SIP_SCHEMES

    @property
    def is_secure(self) -> bool:
        """True for sips: URIs (RFC 3261 section 19.1: TLS on every hop)."""
        return self.scheme == "sips"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter, or None."""
        return self.params.get("maddr")

    @property
    def lr(self) -> bool:
        """True when the URI carries the loose-routing ``lr`` flag."""
        return "lr" in self.params

    @property
    def hostport(self) -> str:
        """``host[:port]`` as it stands in text (IPv6 in brackets)."""
        host = format_host(self.host)
        return host if self.port is None else f"{host}:{self.port}"

    def default_port(self) -> int:
        """The port to use when none is given: 5061 for TLS, else 5060."""
        if self.port is not None:
            return self.port
        return 5061 if self.is_secure or self.transport == "tls" else 5060

    def replace(self, **changes: object) -> URI:
        """A copy with the given fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # ----- text ---------------------------------------------------------------

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user}{self.params}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.hostport)
        if self.params:
            parts.append(str(self.params))
        if self.headers:
            parts += ("?", "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"

    # ----- comparison (RFC 3261 section 19.1.4) -------------------------------

    def _host_key(self) -> str:
        host = self.host.lower()
        if ":" in host:
            try:
                return str(ipaddress.IPv6Address(host))
            except ValueError:
                return host
        return host

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URI):
            return NotImplemented
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            return _tel_digits(self.user) == _tel_digits(other.user) and _params_equal(
                self.params, other.params, must_match=tuple(self.params) + tuple(other.params)
            )
        if _normalise(self.user) != _normalise(other.user):
            return False
        if _normalise(self.password) != _normalise(other.password):
            return False
        if self._host_key() != other._host_key() or self.port != other.port:
            return False
        if not _params_equal(self.params, other.params, must_match=_MUST_MATCH):
            return False
        mine = {(_normalise(n) or "").lower(): _normalise(v) for n, v in self.headers}
        theirs = {(_normalise(n) or "").lower(): _normalise(v) for n, v in other.headers}
        return mine == theirs

    def __hash__(self) -> int:
        # Only what every equal pair shares: params may be ignored by __eq__.
        if self.opaque is not None:
            return hash((self.scheme, self.opaque))
        if self.scheme == "tel":
            # Visual separators do not count in __eq__: not here either.
            return hash((self.scheme, _tel_digits(self.user)))
        return hash((self.scheme, _normalise(self.user), self._host_key(), self.port))


def _decode(text: str | None) -> str | None:
    if text is None or "%" not in text:
        return text
    return _pct_decode(text, errors="surrogateescape")


# escaped = "%" HEXDIG HEXDIG
_ESCAPED_RE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
# reserved = ";" / "/" / "?" / ":" / "@" / "&" / "=" / "+" / "$" / ","
# (and "%" itself: decoded, "%253B" would read as the escape "%3B").
_KEEP_ESCAPED: Final = frozenset(";/?:@&=+$,%")


def _unescape_one(m: re.Match[str]) -> str:
    char = chr(int(m.group(1), 16))
    if char in _KEEP_ESCAPED or not char.isascii():
        return m.group().upper()
    return char


def _normalise(text: str | None) -> str | None:
    """``text`` as URI comparison sees it (RFC 3261 section 19.1.4).

    Characters other than the reserved ones equal their escaped form, so
    those escapes are decoded; an escaped reserved character differs from
    the character itself (``a%3Bb`` is not ``a;b``), so it stays escaped,
    its hex digits in one case. Non-ASCII octets can only stand escaped in a
    URI and stay so too.
    """
    if text is None or "%" not in text:
        return text
    return _ESCAPED_RE.sub(_unescape_one, text)


def _tel_digits(number: str | None) -> str:
    # RFC 3966 section 4: visual separators do not count in comparison.
    return "".join(ch for ch in (number or "") if ch not in "-.()").lower()


class URIParams(Params):
    """URI parameters, looked up by what they mean rather than how they are written.

    In a URI, ``%6C%72`` is ``lr`` (RFC 3261 section 19.1.4: an escaped
    character other than a reserved one equals the character), so names and
    values are unescaped -- once -- for lookup: ``;n%61me=v%61lue%2541``
    gives ``params["name"] == "value%41"``. Output and
    :meth:`items_as_written` keep the escapes as they came. (Header
    parameters are tokens, where ``%`` is an ordinary character: they stay
    plain :class:`Params`.)
    """

    __slots__ = ()

    def _lookup(self) -> dict[str, str | None]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                index.setdefault((_decode(name) or "").lower(), _decode(value))
            self._index = index
        return index

    def __getitem__(self, key: str) -> str | None:
        return self._lookup()[(_decode(key) or "").lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (_decode(key) or "").lower() in self._lookup()


def _unescaped(params: Params) -> dict[str, str | None]:
    # Names lower-cased and unescaped, first occurrence wins: what comparison sees.
    out: dict[str, str | None] = {}
    for name, value in params.items_as_written():
        out.setdefault((_normalise(name) or "").lower(), _normalise(value))
    return out


def _params_equal(a: Params, b: Params, *, must_match: tuple[str, ...]) -> bool:
    da, db = _unescaped(a), _unescaped(b)
    for name in da.keys() | db.keys():
        if name in da and name in db:
            va, vb = da[name], db[name]
            if (va is None) != (vb is None) or (va or "").lower() != (vb or "").lower():
                return False
        elif name in must_match:
            return False
    return True


def _parse_uri_params(ptext: str, text: str) -> Params:
    if not ptext:
        return EMPTY_PARAMS
    items: list[tuple[str, str | None]] = []
    for part in ptext.split(";"):
        name, eq, value = part.partition("=")
        if not _PARAMCHARS_RE.fullmatch(name) or (eq and not _PARAMCHARS_RE.fullmatch(value)):
            raise ParseError(f"bad URI parameter {part!r} in {text!r}")
        items.append((name, value if eq else None))
    return URIParams(items)


# header = hname "=" hvalue ; hname = 1*( hnv-unreserved / unreserved / escaped )
# hvalue = *( hnv-unreserved / unreserved / escaped )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
_HNAME_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})+")
_HVALUE_RE: Final = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")


def _parse_uri_headers(htext: str, text: str) -> tuple[tuple[str, str], ...]:
    items: list[tuple[str, str]] = []
    for part in htext.split("&"):
        name, eq, value = part.partition("=")
        if not eq or not _HNAME_RE.fullmatch(name) or not _HVALUE_RE.fullmatch(value):
            raise ParseError(f"bad URI header {part!r} in {text!r}")
        items.append((name, value))
    return tuple(items)


@functools.lru_cache(maxsize=4096)
def _parse_uri_memo(text: str) -> URI:
    return URI._parse(text)
