"""Digest access authentication for SIP, sans-IO.

Parses and builds the values of WWW-Authenticate / Proxy-Authenticate
(:class:`Challenge`) and Authorization / Proxy-Authorization
(:class:`Credentials`), and computes and checks digest responses:

- RFC 3261 section 22 and the ABNF of section 25.1 for the header syntax;
- RFC 2617 for the legacy computation without ``qop``;
- RFC 7616 for SHA-256, SHA-512-256, the ``-sess`` variants and ``userhash``;
- RFC 8760 for their use in SIP.

Strings are hashed as UTF-8, which is what SIP carries on the wire (RFC 3261
section 7), whatever ``charset`` says.

An ``algorithm`` this module does not know is not an error: it is kept as the
raw token (a ``str`` in the ``algorithm`` field) so that the value round-trips,
and :attr:`Challenge.effective_algorithm` is then ``None``. Callers decide what
to do with it; :func:`choose_challenge` skips such challenges and
:func:`verify` refuses such credentials.

Malformed text raises :class:`~trio_sip.errors.ParseError` (``status_hint``
400) and nothing else. Building a value that cannot be written on the wire (a
CR or LF inside a quoted string, a non-token where a token goes) raises
:class:`ValueError`, since that is the caller's bug and not the peer's.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Final

from trio_sip.errors import ParseError

__all__ = [
    "Algorithm",
    "AuthParam",
    "Challenge",
    "Credentials",
    "parse_challenges",
    "choose_challenge",
    "userhash",
    "ha1",
    "ha2",
    "compute_response",
    "authorize",
    "verify",
]


# --- lexical rules ---------------------------------------------------------

# RFC 3261 section 25.1:
#   LWS  =  [*WSP CRLF] 1*WSP ; linear whitespace
#   SWS  =  [LWS] ; sep whitespace
# Written as *WSP *(CRLF 1*WSP) so that it runs in linear time; it also takes
# several folds in a row, which costs nothing and helps with sloppy peers.
_SWS: Final = re.compile(r"[ \t]*(?:\r\n[ \t]+)*")

# RFC 3261 section 25.1:
#   token  =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#             / "_" / "+" / "`" / "'" / "~" )
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")

# RFC 3261 section 25.1:
#   quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
#   qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
#   quoted-pair    =  "\" (%x00-09 / %x0B-0C / %x0E-7F)
# The leading SWS is skipped by the scanner. UTF8-NONASCII excludes the
# surrogate range, which a str decoded with surrogateescape can still hold.
_QUOTED: Final = re.compile(
    r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\ud7ff\ue000-\U0010ffff]'
    r"|\r\n[ \t]"
    r'|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)"'
)

# The inverse of the two escapes a quoted-string allows: a quoted-pair
# ("\" CHAR) stands for CHAR, and a fold (*WSP CRLF 1*WSP) is one SP
# (RFC 3261 section 7.3.1).
_UNESCAPE: Final = re.compile(r"\\(.)|[ \t]*\r\n[ \t]+", re.DOTALL)

# Characters that qdtext does not allow but quoted-pair does: they must be
# written with a backslash in front (RFC 3261 section 25.1, quoted-pair).
_NEEDS_ESCAPE: Final = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')

# CR and LF have no quoted-pair, and lone surrogates are not UTF-8: neither
# can be put inside a quoted-string at all.
_UNQUOTABLE: Final = re.compile(r"[\r\n\ud800-\udfff]")

# RFC 3261 section 25.1:
#   nc-value  =  8LHEX
#   LHEX      =  DIGIT / %x61-66 ;lowercase a-f
# Upper-case hex digits are accepted too: a peer that writes them means the
# same count.
_NC_VALUE: Final = re.compile(r"[0-9a-fA-F]{8}")

# RFC 3261 section 25.1:  LHEX  =  DIGIT / %x61-66 ;lowercase a-f
# (a stored H(A1) is a run of these; upper case is tolerated)
_HEX: Final = re.compile(r"[0-9a-fA-F]+")

# RFC 5987 section 3.2.1, used by RFC 7616 section 3.4 for username*:
#   ext-value     = charset  "'" [ language ] "'" value-chars
#   charset       = "UTF-8" / "ISO-8859-1" / mime-charset
#   value-chars   = *( pct-encoded / attr-char )
#   pct-encoded   = "%" HEXDIG HEXDIG
#   attr-char     = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "."
#                   / "^" / "_" / "`" / "|" / "~"
# Only the two charsets RFC 5987 requires are decoded; language is ignored.
_EXT_VALUE: Final = re.compile(
    r"(?i:(UTF-8|ISO-8859-1))'[A-Za-z0-9\-]*'((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*)"
)


def _is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


def _quote(value: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), value) + '"'


def _unquote(inner: str) -> str:
    return _UNESCAPE.sub(lambda m: m.group(1) if m.group(1) is not None else " ", inner)


def _check_quotable(what: str, value: str) -> None:
    if _UNQUOTABLE.search(value):
        raise ValueError(f"{what} cannot be written in a quoted-string (CR, LF or surrogate)")


def _check_token(what: str, value: str) -> None:
    if not _is_token(value):
        raise ValueError(f"{what} must be a token, got {value!r}")


# --- algorithms ------------------------------------------------------------


class Algorithm(enum.Enum):
    """A digest algorithm; the value is the token as written on the wire.

    Parse a token with :meth:`parse`, which returns ``None`` for an algorithm
    this module does not know rather than raising: RFC 7616 section 3.3 asks
    a client to ignore challenges it cannot answer, and only the caller
    knows whether another challenge is on offer.
    """

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def parse(cls, token: str) -> Algorithm | None:
        """The algorithm named by ``token`` (case-insensitive), or ``None`` if unknown."""
        return _ALGORITHMS_BY_NAME.get(token.lower())

    @property
    def is_session(self) -> bool:
        """Whether this is a ``-sess`` variant, whose H(A1) also covers nonce and cnonce."""
        return self.value.endswith("-sess")

    @property
    def hash_name(self) -> str:
        """The :mod:`hashlib` name of the underlying hash function."""
        return _HASH_NAMES[self]

    @property
    def hex_length(self) -> int:
        """Length of a digest of this algorithm in hexadecimal characters."""
        return 32 if self.hash_name == "md5" else 64

    @property
    def available(self) -> bool:
        """Whether this Python's :mod:`hashlib` provides the hash function.

        SHA-512/256 comes from OpenSSL and is missing from some builds.
        """
        return self.hash_name in hashlib.algorithms_available

    def hexdigest(self, data: str | bytes) -> str:
        """Hash ``data`` (a str is encoded as UTF-8) and return lower-case hex."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return hashlib.new(self.hash_name, raw).hexdigest()


_ALGORITHMS_BY_NAME: Final[Mapping[str, Algorithm]] = {a.value.lower(): a for a in Algorithm}

_HASH_NAMES: Final[Mapping[Algorithm, str]] = {
    Algorithm.MD5: "md5",
    Algorithm.MD5_SESS: "md5",
    Algorithm.SHA_256: "sha256",
    Algorithm.SHA_256_SESS: "sha256",
    Algorithm.SHA_512_256: "sha512_256",
    Algorithm.SHA_512_256_SESS: "sha512_256",
}

# Higher is preferred (see choose_challenge for why strength and not the
# server's order). Within one hash the plain variant comes first: -sess exists
# for third-party authentication servers and buys a SIP UA nothing.
_STRENGTH: Final[Mapping[Algorithm, int]] = {
    Algorithm.SHA_512_256: 6,
    Algorithm.SHA_512_256_SESS: 5,
    Algorithm.SHA_256: 4,
    Algorithm.SHA_256_SESS: 3,
    Algorithm.MD5: 2,
    Algorithm.MD5_SESS: 1,
}

_QOP_AUTH: Final = "auth"
_QOP_AUTH_INT: Final = "auth-int"


def _normalise_algorithm(value: Algorithm | str | None) -> Algorithm | str | None:
    if value is None or isinstance(value, Algorithm):
        return value
    known = Algorithm.parse(value)
    if known is not None:
        return known
    _check_token("algorithm", value)
    return value


def _effective(value: Algorithm | str | None) -> Algorithm | None:
    # RFC 2617 section 3.2.1: "If this is not present it is assumed to be MD5".
    if value is None:
        return Algorithm.MD5
    return value if isinstance(value, Algorithm) else None


# --- auth-params -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthParam:
    """An auth-param this module gives no meaning to, kept as it came.

    ``quoted`` says whether the value is written as a quoted-string or as a
    bare token; some servers (3GPP ``ik``/``ck``, vendor extensions) care.
    """

    name: str
    value: str
    quoted: bool = True

    def __post_init__(self) -> None:
        _check_token("auth-param name", self.name)
        if self.quoted:
            _check_quotable(f"auth-param {self.name}", self.value)
        else:
            _check_token(f"auth-param {self.name}", self.value)

    def __str__(self) -> str:
        return f"{self.name}={_quote(self.value) if self.quoted else self.value}"


def _lookup(params: tuple[AuthParam, ...], name: str) -> str | None:
    wanted = name.lower()
    for param in params:
        if param.name.lower() == wanted:
            return param.value
    return None


# --- scanner ---------------------------------------------------------------

# (name, value, quoted) as read from the wire, value already unquoted.
_RawParam = tuple[str, str, bool]


class _Scanner:
    """Walks a header value left to right; every failure is a ParseError."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def skip_sws(self) -> bool:
        match = _SWS.match(self.text, self.pos)
        start = self.pos
        if match is not None:
            self.pos = match.end()
        return self.pos > start

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def token(self, what: str) -> str:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise self.error(f"expected {what}")
        self.pos = match.end()
        return match.group()

    def value(self, name: str) -> tuple[str, bool]:
        if self.peek() == '"':
            match = _QUOTED.match(self.text, self.pos)
            if match is None:
                raise self.error(f"bad quoted-string for {name!r}")
            self.pos = match.end()
            return _unquote(match.group(1)), True
        return self.token(f"value for {name!r}"), False

    def error(self, reason: str) -> ParseError:
        return ParseError(f"{reason} at offset {self.pos} of auth header value", status_hint=400)


def _parse_groups(text: str) -> list[tuple[str, list[_RawParam]]]:
    """Split a header value into (auth-scheme, params) groups.

    A list element is either ``scheme LWS auth-param`` (which opens a new
    challenge) or a bare ``auth-param`` (which continues the current one):
    after a token, an "=" means auth-param, anything else means scheme. Quoted
    strings are consumed whole, so commas inside them never split.
    """
    scanner = _Scanner(text)
    groups: list[tuple[str, list[_RawParam]]] = []
    while True:
        scanner.skip_sws()
        # RFC 7230 section 7: recipients accept empty list elements.
        while scanner.peek() == ",":
            scanner.pos += 1
            scanner.skip_sws()
        if scanner.at_end():
            break
        word = scanner.token("auth-scheme or auth-param name")
        after_word = scanner.pos
        scanner.skip_sws()
        if scanner.peek() == "=":
            if not groups:
                raise scanner.error("auth-param before any auth-scheme")
            scanner.pos += 1
            scanner.skip_sws()
            value, quoted = scanner.value(word)
            groups[-1][1].append((word, value, quoted))
        else:
            groups.append((word, []))
            if not (scanner.at_end() or scanner.peek() == ","):
                if scanner.pos == after_word:
                    raise scanner.error("expected whitespace after auth-scheme")
                name = scanner.token("auth-param name")
                scanner.skip_sws()
                scanner.expect("=")
                scanner.skip_sws()
                value, quoted = scanner.value(name)
                groups[-1][1].append((name, value, quoted))
        scanner.skip_sws()
        if scanner.at_end():
            break
        scanner.expect(",")
    if not groups:
        raise ParseError("empty auth header value", status_hint=400)
    return groups


def _split_known(
    params: list[_RawParam], known: frozenset[str]
) -> tuple[dict[str, str], tuple[AuthParam, ...]]:
    # Known directives are looked up by lower-case name; whether they were
    # quoted is dropped, since peers quote tokens and vice versa.
    found: dict[str, str] = {}
    extra: list[AuthParam] = []
    for name, value, quoted in params:
        key = name.lower()
        if key in known:
            # RFC 7235 section 2.1: each parameter name occurs only once per
            # challenge; two values for one directive could not both be honoured.
            if key in found:
                raise ParseError(f"duplicate {key!r} directive", status_hint=400)
            found[key] = value
        else:
            extra.append(AuthParam(name, value, quoted))
    return found, tuple(extra)


def _token_value(name: str, value: str) -> str:
    if not _is_token(value):
        raise ParseError(f"{name!r} must be a token, got {value!r}", status_hint=400)
    return value


def _flag(value: str | None) -> bool:
    # RFC 2617 section 3.2.1: anything but "true" (any case) counts as false.
    return value is not None and value.lower() == "true"


def _parsed_algorithm(raw: str | None) -> Algorithm | str | None:
    if raw is None:
        return None
    return Algorithm.parse(raw) or _token_value("algorithm", raw)


# --- challenge -------------------------------------------------------------

_CHALLENGE_KEYS: Final = frozenset(
    {"realm", "domain", "nonce", "opaque", "stale", "algorithm", "qop", "userhash", "charset"}
)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a WWW-Authenticate or Proxy-Authenticate value.

    ``algorithm`` is ``None`` when the challenge names none (MD5 is then
    implied), an :class:`Algorithm` when known, or the raw token when not.
    ``qop`` holds the offered options as written (``auth``, ``auth-int``,
    possibly others). Parameters with no field here are in ``params``, in
    their original order.

    A challenge of another scheme than Digest (as ``parse_challenges`` may
    meet in a mixed header) keeps every parameter in ``params`` and leaves
    the Digest fields at their defaults, with ``realm`` and ``nonce`` empty.
    """

    realm: str
    nonce: str
    _: KW_ONLY
    scheme: str = "Digest"
    opaque: str | None = None
    algorithm: Algorithm | str | None = None
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    charset: str | None = None
    params: tuple[AuthParam, ...] = ()

    def __post_init__(self) -> None:
        _check_token("auth-scheme", self.scheme)
        object.__setattr__(self, "qop", tuple(self.qop))
        object.__setattr__(self, "domain", tuple(self.domain))
        object.__setattr__(self, "params", tuple(self.params))
        if not self.is_digest:
            digest_fields = (self.realm, self.nonce, self.qop, self.stale, self.domain)
            digest_fields_set = any(digest_fields) or self.userhash
            optional = (self.opaque, self.algorithm, self.charset)
            if digest_fields_set or any(v is not None for v in optional):
                raise ValueError(f"{self.scheme} challenge with Digest fields set")
            return
        object.__setattr__(self, "algorithm", _normalise_algorithm(self.algorithm))
        _check_quotable("realm", self.realm)
        _check_quotable("nonce", self.nonce)
        if self.opaque is not None:
            _check_quotable("opaque", self.opaque)
        for option in self.qop:
            _check_token("qop option", option)
        for uri in self.domain:
            if not uri or " " in uri or "\t" in uri or _UNQUOTABLE.search(uri):
                raise ValueError(f"bad domain URI {uri!r}")
        if self.charset is not None:
            _check_token("charset", self.charset)

    @property
    def is_digest(self) -> bool:
        """Whether this is a Digest challenge (the scheme is case-insensitive)."""
        return self.scheme.lower() == "digest"

    @property
    def effective_algorithm(self) -> Algorithm | None:
        """The algorithm to answer with: MD5 when none is named, ``None`` if unknown."""
        return _effective(self.algorithm) if self.is_digest else None

    def param(self, name: str) -> str | None:
        """The value of the first extra parameter called ``name`` (case-insensitive)."""
        return _lookup(self.params, name)

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a header value holding exactly one challenge.

        Raises :class:`~trio_sip.errors.ParseError` on bad syntax, on a Digest
        challenge without realm or nonce, and on several challenges (use
        :func:`parse_challenges` for those).
        """
        groups = _parse_groups(value)
        if len(groups) != 1:
            raise ParseError(f"expected one challenge, got {len(groups)}", status_hint=400)
        return _challenge_from(*groups[0])

    def __str__(self) -> str:
        if not self.is_digest:
            if not self.params:
                return self.scheme
            return f"{self.scheme} " + ", ".join(str(p) for p in self.params)
        parts = [f"realm={_quote(self.realm)}"]
        if self.domain:
            parts.append(f"domain={_quote(' '.join(self.domain))}")
        parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.algorithm is not None:
            parts.append(f"algorithm={_algorithm_text(self.algorithm)}")
        if self.qop:
            # RFC 3261 section 25.1: qop-options = "qop" EQUAL LDQUOT qop-value
            # *("," qop-value) RDQUOT -- no spaces inside.
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        if self.charset is not None:
            parts.append(f"charset={self.charset}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(str(p) for p in self.params)
        return f"{self.scheme} " + ", ".join(parts)


def _domain_uris(value: str) -> tuple[str, ...]:
    # RFC 3261 section 25.1: domain = "domain" EQUAL LDQUOT URI *( 1*SP URI )
    # RDQUOT. Split on SP and HTAB only: str.split() would also cut at
    # Unicode spaces, which may sit inside a URI.
    return tuple(uri for uri in value.replace("\t", " ").split(" ") if uri)


def _algorithm_text(algorithm: Algorithm | str) -> str:
    return algorithm.value if isinstance(algorithm, Algorithm) else algorithm


def _challenge_from(scheme: str, raw: list[_RawParam]) -> Challenge:
    try:
        if scheme.lower() != "digest":
            extra = tuple(AuthParam(name, value, quoted) for name, value, quoted in raw)
            return Challenge("", "", scheme=scheme, params=extra)
        values, extra = _split_known(raw, _CHALLENGE_KEYS)
        if "realm" not in values or "nonce" not in values:
            raise ParseError("Digest challenge without realm or nonce", status_hint=400)
        qop: tuple[str, ...] = ()
        if "qop" in values:
            options = (item.strip(" \t") for item in values["qop"].split(","))
            qop = tuple(_token_value("qop", item) for item in options if item)
        charset = values.get("charset")
        return Challenge(
            values["realm"],
            values["nonce"],
            scheme="Digest",
            opaque=values.get("opaque"),
            algorithm=_parsed_algorithm(values.get("algorithm")),
            qop=qop,
            stale=_flag(values.get("stale")),
            domain=_domain_uris(values.get("domain", "")),
            userhash=_flag(values.get("userhash")),
            charset=None if charset is None else _token_value("charset", charset),
            params=extra,
        )
    except ValueError as exc:
        # The grammar checks above should leave nothing for the constructor
        # to refuse; this keeps the promise of "ParseError only" if they miss.
        raise ParseError(f"bad challenge: {exc}", status_hint=400) from exc


def parse_challenges(value: str) -> list[Challenge]:
    """Parse every challenge of one WWW-Authenticate / Proxy-Authenticate value.

    Several challenges may share a line (``Digest realm=..., nonce=...,
    Digest realm=...``); a new one starts at each ``scheme LWS name=``.
    Challenges of other schemes are returned too (see :class:`Challenge`).
    """
    return [_challenge_from(scheme, raw) for scheme, raw in _parse_groups(value)]


def choose_challenge(
    challenges: Iterable[Challenge], *, by_strength: bool = True
) -> Challenge | None:
    """Pick the challenge to answer, or ``None`` when none can be answered.

    A challenge can be answered when it is Digest, its algorithm is known and
    available in :mod:`hashlib`, and it offers no qop or one of auth and
    auth-int. Among those, the default picks the strongest hash
    (SHA-512-256, then SHA-256, then MD5; plain before ``-sess``), the first
    offered on a tie. ``by_strength=False`` takes the first answerable one
    instead, i.e. the server's order of preference, which is what RFC 8760
    section 2.4 asks of a UAC unless local policy says otherwise; preferring
    the strongest hash is such a policy, and it stops a man in the middle
    from downgrading us by reordering the header fields (RFC 8760 section 3).

    Call it once per realm when challenges come from several realms (a
    forking proxy aggregates them): RFC 3261 section 22.3 wants credentials
    for each.
    """
    best: Challenge | None = None
    best_rank = 0
    for challenge in challenges:
        algorithm = challenge.effective_algorithm
        if algorithm is None or not algorithm.available:
            continue
        if challenge.qop and _pick_qop(challenge.qop) is None:
            continue
        if not by_strength:
            return challenge
        rank = _STRENGTH[algorithm]
        if rank > best_rank:
            best, best_rank = challenge, rank
    return best


def _pick_qop(options: tuple[str, ...]) -> str | None:
    # RFC 7616 section 3.4: the client picks one of the offered options. auth
    # is preferred over auth-int: the body seen by the server may legitimately
    # differ (a proxy may rewrite SDP), and auth-int then fails.
    lowered = {option.lower() for option in options}
    if _QOP_AUTH in lowered:
        return _QOP_AUTH
    if _QOP_AUTH_INT in lowered:
        return _QOP_AUTH_INT
    return None


# --- credentials -----------------------------------------------------------

_CREDENTIAL_KEYS: Final = frozenset(
    {
        "username",
        "username*",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "userhash",
    }
)

_NC_MAX: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Credentials:
    """A Digest Authorization or Proxy-Authorization value.

    ``nc`` is the nonce count as an int (written as 8 hex digits). ``qop`` is
    kept as written because it enters the hash. When ``userhash`` is true,
    ``username`` holds H(username:realm) rather than the name itself
    (RFC 7616 section 3.4.4). An RFC 7616 ``username*`` is decoded into
    ``username`` on parse and written back as a plain UTF-8 quoted-string,
    which SIP allows.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    _: KW_ONLY
    algorithm: Algorithm | str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None
    userhash: bool = False
    params: tuple[AuthParam, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", _normalise_algorithm(self.algorithm))
        object.__setattr__(self, "params", tuple(self.params))
        for name in ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque"):
            field_value = getattr(self, name)
            if field_value is not None:
                _check_quotable(name, field_value)
        if self.qop is not None:
            _check_token("qop", self.qop)
        if self.nc is not None and not 0 <= self.nc <= _NC_MAX:
            raise ValueError(f"nc out of range: {self.nc}")

    @property
    def effective_algorithm(self) -> Algorithm | None:
        """The algorithm used: MD5 when none is named, ``None`` if unknown."""
        return _effective(self.algorithm)

    def param(self, name: str) -> str | None:
        """The value of the first extra parameter called ``name`` (case-insensitive)."""
        return _lookup(self.params, name)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """Parse a Digest Authorization / Proxy-Authorization value.

        Raises :class:`~trio_sip.errors.ParseError` on bad syntax, another
        scheme than Digest, a missing username, realm, nonce, uri or response,
        or a qop without cnonce and nc (RFC 7616 section 3.4).
        """
        groups = _parse_groups(value)
        if len(groups) != 1:
            raise ParseError(f"expected one credentials value, got {len(groups)}", status_hint=400)
        scheme, raw = groups[0]
        if scheme.lower() != "digest":
            raise ParseError(f"unsupported auth-scheme {scheme!r}", status_hint=400)
        try:
            return _credentials_from(raw)
        except ValueError as exc:
            raise ParseError(f"bad credentials: {exc}", status_hint=400) from exc

    def __str__(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
        ]
        if self.algorithm is not None:
            parts.append(f"algorithm={_algorithm_text(self.algorithm)}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            # RFC 3261 section 25.1: message-qop = "qop" EQUAL qop-value, a
            # bare token. Some clients quote it; parse accepts both.
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc:08x}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(str(p) for p in self.params)
        return "Digest " + ", ".join(parts)


def _decode_ext_value(text: str) -> str:
    match = _EXT_VALUE.fullmatch(text)
    if match is None:
        raise ParseError("bad username* ext-value", status_hint=400)
    raw = urllib.parse.unquote_to_bytes(match.group(2))
    charset = "utf-8" if match.group(1).lower() == "utf-8" else "iso-8859-1"
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise ParseError("username* is not valid UTF-8", status_hint=400) from exc


def _credentials_from(raw: list[_RawParam]) -> Credentials:
    values, extra = _split_known(raw, _CREDENTIAL_KEYS)
    userhash_flag = _flag(values.get("userhash"))
    if "username*" in values:
        # RFC 7616 section 3.4: username* is for names that cannot be sent
        # as they are, and is never combined with username or userhash.
        if "username" in values or userhash_flag:
            raise ParseError("username* together with username or userhash", status_hint=400)
        values["username"] = _decode_ext_value(values["username*"])
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in values]
    if missing:
        raise ParseError(f"credentials without {', '.join(missing)}", status_hint=400)
    qop = values.get("qop")
    if qop is not None:
        _token_value("qop", qop)
        if "cnonce" not in values or "nc" not in values:
            raise ParseError("qop given without cnonce and nc", status_hint=400)
    nc: int | None = None
    if "nc" in values:
        if _NC_VALUE.fullmatch(values["nc"]) is None:
            raise ParseError(f"nc must be 8 hex digits, got {values['nc']!r}", status_hint=400)
        nc = int(values["nc"], 16)
    return Credentials(
        values["username"],
        values["realm"],
        values["nonce"],
        values["uri"],
        values["response"],
        algorithm=_parsed_algorithm(values.get("algorithm")),
        cnonce=values.get("cnonce"),
        opaque=values.get("opaque"),
        qop=qop,
        nc=nc,
        userhash=userhash_flag,
        params=extra,
    )


# --- computation -----------------------------------------------------------


def userhash(algorithm: Algorithm, username: str, realm: str) -> str:
    """H(username ":" realm), sent in place of the name when ``userhash=true``.

    RFC 7616 section 3.4.4.
    """
    return algorithm.hexdigest(f"{username}:{realm}")


def _session_ha1(algorithm: Algorithm, base: str, nonce: str | None, cnonce: str | None) -> str:
    # RFC 7616 section 3.4.2: for -sess, A1 = H(user:realm:passwd) ":" nonce ":" cnonce,
    # so a stored H(user:realm:passwd) serves both variants.
    if not algorithm.is_session:
        return base
    if nonce is None or cnonce is None:
        raise ValueError(f"{algorithm.value} needs nonce and cnonce")
    return algorithm.hexdigest(f"{base}:{nonce}:{cnonce}")


def ha1(
    algorithm: Algorithm,
    username: str,
    realm: str,
    password: str,
    nonce: str | None = None,
    cnonce: str | None = None,
) -> str:
    """H(A1) of RFC 7616 section 3.4.2 (RFC 2617 section 3.2.2.2 for MD5).

    For a ``-sess`` algorithm ``nonce`` and ``cnonce`` are required and
    folded in; otherwise they are ignored. ``username`` is the real name,
    never its userhash.
    """
    base = algorithm.hexdigest(f"{username}:{realm}:{password}")
    return _session_ha1(algorithm, base, nonce, cnonce)


def ha2(
    algorithm: Algorithm, method: str, uri: str, qop: str | None = None, body: bytes = b""
) -> str:
    """H(A2) of RFC 7616 section 3.4.3.

    A2 is ``method:uri``, plus ``:H(body)`` when qop is auth-int. Raises
    :class:`ValueError` for a qop other than none, auth and auth-int.
    """
    kind = None if qop is None else qop.lower()
    if kind == _QOP_AUTH_INT:
        return algorithm.hexdigest(f"{method}:{uri}:{algorithm.hexdigest(body)}")
    if kind is None or kind == _QOP_AUTH:
        return algorithm.hexdigest(f"{method}:{uri}")
    raise ValueError(f"unsupported qop {qop!r}")


def compute_response(
    algorithm: Algorithm,
    ha1: str,
    ha2: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
) -> str:
    """The request-digest: KD(H(A1), ...) of RFC 7616 section 3.4.1.

    ``ha1`` is the final H(A1), session part included (as :func:`ha1`
    returns it). With qop, the digested string is
    ``ha1:nonce:nc:cnonce:qop:ha2`` (``qop`` as written, ``nc`` as 8
    lower-case hex digits); without qop it is RFC 2069's ``ha1:nonce:ha2``,
    which RFC 2617 section 3.2.2.1 keeps for compatibility.
    """
    if qop is None:
        return algorithm.hexdigest(f"{ha1}:{nonce}:{ha2}")
    if qop.lower() not in (_QOP_AUTH, _QOP_AUTH_INT):
        raise ValueError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    return algorithm.hexdigest(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}")


def _stored_ha1(algorithm: Algorithm, value: str) -> str | None:
    if len(value) != algorithm.hex_length or _HEX.fullmatch(value) is None:
        return None
    return value.lower()


def authorize(
    challenge: Challenge,
    *,
    username: str,
    password: str | None = None,
    ha1: str | None = None,
    method: str,
    uri: str,
    body: bytes = b"",
    cnonce: str | None = None,
    nc: int = 1,
) -> Credentials:
    """Answer ``challenge``: the Credentials for a request ``method`` to ``uri``.

    Give exactly one of ``password`` and ``ha1`` (the stored
    H(username:realm:password) of the challenge's hash; the ``-sess`` part is
    added here). qop is auth when offered, else auth-int (which covers
    ``body``), else absent (RFC 2617 legacy). A random cnonce is made when
    needed and not given; ``nc`` counts the requests sent with this nonce.
    When the challenge asks for ``userhash``, the name is sent hashed.

    Raises :class:`ValueError` when the challenge cannot be answered (not
    Digest, unknown or unavailable algorithm, only unknown qop options) --
    :func:`choose_challenge` filters those out -- or on bad arguments.
    """
    algorithm = challenge.effective_algorithm
    if algorithm is None or not algorithm.available:
        raise ValueError(f"cannot answer a {challenge.scheme} challenge with {challenge.algorithm}")
    qop = _pick_qop(challenge.qop)
    if challenge.qop and qop is None:
        raise ValueError(f"no supported qop among {challenge.qop}")
    if (password is None) == (ha1 is None):
        raise ValueError("give exactly one of password and ha1")
    if not 1 <= nc <= _NC_MAX:
        raise ValueError(f"nc out of range: {nc}")
    needs_cnonce = qop is not None or algorithm.is_session
    if needs_cnonce and cnonce is None:
        cnonce = secrets.token_hex(16)
    if not needs_cnonce:
        cnonce = None
    if password is not None:
        base = algorithm.hexdigest(f"{username}:{challenge.realm}:{password}")
    else:
        assert ha1 is not None  # checked above; narrows the type
        stored = _stored_ha1(algorithm, ha1)
        if stored is None:
            raise ValueError(f"ha1 is not a {algorithm.value} digest")
        base = stored
    key = _session_ha1(algorithm, base, challenge.nonce, cnonce)
    count = nc if qop is not None else None
    response = compute_response(
        algorithm,
        key,
        ha2(algorithm, method, uri, qop, body),
        challenge.nonce,
        qop=qop,
        nc=count,
        cnonce=cnonce,
    )
    wire_name = userhash(algorithm, username, challenge.realm) if challenge.userhash else username
    return Credentials(
        wire_name,
        challenge.realm,
        challenge.nonce,
        uri,
        response,
        algorithm=challenge.algorithm,
        cnonce=cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=count,
        userhash=challenge.userhash,
    )


def verify(
    credentials: Credentials,
    *,
    method: str,
    body: bytes = b"",
    password: str | None = None,
    ha1: str | None = None,
    username: str | None = None,
) -> bool:
    """Whether ``credentials`` carry the right response for this request.

    Give exactly one of ``password`` and ``ha1`` (the stored
    H(username:realm:password) of the credentials' hash; one of another hash
    length simply fails). ``username`` is the real name: needed with a
    password when ``credentials.userhash`` is true, and checked against the
    header whenever given.

    Only the digest is checked, in constant time. The caller checks the
    rest: that realm, nonce and opaque are its own and fresh, that ``uri``
    matches the Request-URI, and that ``nc`` grows (replay protection,
    RFC 7616 section 3.4, nc). Credentials of an unknown algorithm or qop
    give ``False``.
    """
    if (password is None) == (ha1 is None):
        raise ValueError("give exactly one of password and ha1")
    algorithm = credentials.effective_algorithm
    if algorithm is None or not algorithm.available:
        return False
    qop = credentials.qop
    if qop is not None and (
        qop.lower() not in (_QOP_AUTH, _QOP_AUTH_INT)
        or credentials.nc is None
        or credentials.cnonce is None
    ):
        return False
    if algorithm.is_session and credentials.cnonce is None:
        return False
    if credentials.userhash:
        if username is not None:
            expected_hash = userhash(algorithm, username, credentials.realm)
            if not _same(expected_hash, credentials.username.lower()):
                return False
        elif password is not None:
            raise ValueError("userhash credentials need the real username to check a password")
        real_name = username
    else:
        if username is not None and username != credentials.username:
            return False
        real_name = credentials.username
    if password is not None:
        assert real_name is not None  # ensured above
        base = algorithm.hexdigest(f"{real_name}:{credentials.realm}:{password}")
    else:
        assert ha1 is not None  # checked above; narrows the type
        stored = _stored_ha1(algorithm, ha1)
        if stored is None:
            return False
        base = stored
    key = _session_ha1(algorithm, base, credentials.nonce, credentials.cnonce)
    expected = compute_response(
        algorithm,
        key,
        ha2(algorithm, method, credentials.uri, qop, body),
        credentials.nonce,
        qop=qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
    )
    # Peers write hex in either case; RFC 3261's LHEX says lower.
    return _same(expected, credentials.response.lower())


def _same(expected: str, given: str) -> bool:
    # compare_digest only takes ASCII str; the peer's text may be anything.
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
