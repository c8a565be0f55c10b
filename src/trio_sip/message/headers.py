"""The header section of a SIP message: an ordered, case-insensitive multimap.

Every header line is kept in order with its name as written and its value
(after unfolding, RFC 3261 section 7.3.1). Lookups accept any case and the
compact forms (``v`` for Via, ``i`` for Call-ID ...). Headers that trio-sip
does not know stay byte-exact: they are only looked at when asked for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Final

from ..errors import ParseError
from ._text import refuse_line_breaks, split_commas

__all__ = ["Headers", "canonical_name", "written_name", "COMPACT_FORMS"]

# RFC 3261 section 7.3.3 and the registrations that followed it (IANA "SIP
# parameters": compact forms).
COMPACT_FORMS: Final[dict[str, str]] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

# Canonical spelling for output of well-known headers (lower-case key -> name).
_CANONICAL: Final[dict[str, str]] = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "RAck",
        "Server",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
        "Path",
        "Service-Route",
        "P-Asserted-Identity",
        "Min-SE",
    )
}

# key cache: header name as written -> lookup key (lower-case long form).
# Bounded so that a stream of random names cannot grow it without limit.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX: Final = 4096


def canonical_name(name: str) -> str:
    """The lookup key of a header name: lower case, compact forms expanded."""
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    lower = name.lower()
    long = COMPACT_FORMS.get(lower)
    key = long.lower() if long is not None else lower
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


def display_name(key: str) -> str:
    """The usual spelling of a header for output (``call-id`` -> ``Call-ID``)."""
    known = _CANONICAL.get(key)
    if known is not None:
        return known
    return "-".join(part.capitalize() for part in key.split("-"))


# written-name cache: header name as received -> as written out, bounded like _KEY_CACHE.
_WRITTEN_CACHE: dict[str, str] = {}


def written_name(name: str, key: str) -> str:
    """How a header ``name`` (lookup ``key``) is written out by code that adds it.

    A compact or all-lower-case name is written in its usual form (``v`` and
    ``via`` as ``Via``); any other spelling is kept.
    """
    # ``key`` is canonical_name(name): the answer depends on ``name`` alone,
    # and responses copy the same few names again and again.
    written = _WRITTEN_CACHE.get(name)
    if written is None:
        written = display_name(key) if len(name) == 1 or name.lower() == key else name
        if len(_WRITTEN_CACHE) < _KEY_CACHE_MAX:
            _WRITTEN_CACHE[name] = written
    return written


# Header versions are unique across every Headers object, not counted per
# object: a message compares its cached views and wire bytes with the version
# of the headers it has now, and headers put in place of others (``msg.headers
# = Headers(...)``) must not pass for the ones the caches were made from.
_next_version: Final = itertools.count(1).__next__


def _check_line(name: str, value: str) -> None:
    # A header line written by us: no line break in it, no colon in the name
    # (header injection: see refuse_line_breaks). Tested inline first: every
    # response we build adds a few lines, and they are nearly always clean.
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        refuse_line_breaks(value, "a header value")
        refuse_line_breaks(name, "a header name")
        raise ParseError(f"a header name cannot hold a colon: {name!r}", status_hint=500)


class Headers:
    """Header lines in order: ``(name as written, value)`` with case-free lookup.

    A header that appears on several lines, or with several comma-separated
    values on one line, keeps that shape; :meth:`values` splits values.
    Every mutation gives :attr:`version` a new value (one no other Headers
    has had) so that cached typed views know they are stale.
    """

    __slots__ = ("_keys", "_names", "_values", "version")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # Lists, or tuples once compact() ran (the first change makes lists again).
        self._keys: list[str] | tuple[str, ...] = []
        self._names: list[str] | tuple[str, ...] = []
        self._values: list[str] | tuple[str, ...] = []
        self.version = _next_version()
        keys, names, values = self._writable()
        for name, value in items:
            _check_line(name, value)
            keys.append(canonical_name(name))
            names.append(name)
            values.append(value)

    @classmethod
    def _from_parsed(cls, keys: list[str], names: list[str], values: list[str]) -> Headers:
        self = cls.__new__(cls)
        self._keys, self._names, self._values = keys, names, values
        self.version = _next_version()
        return self

    # ----- reading ------------------------------------------------------------

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first line of ``name``, or ``default``."""
        key = canonical_name(name)
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            return default

    def get_all(self, name: str) -> list[str]:
        """The values of every line of ``name``, in order, unsplit."""
        key = canonical_name(name)
        keys = self._keys
        if key not in keys:
            return []  # the common case (no Record-Route, no Route ...), in C
        return [v for k, v in zip(keys, self._values, strict=True) if k == key]

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of ``name`` across its lines, in order.

        Only meaningful for headers defined as lists (Via, Contact, Route,
        Allow ...); a Date header, say, has a comma in its single value.
        """
        out: list[str] = []
        for value in self.get_all(name):
            out += split_commas(value)
        return out

    def first_value(self, name: str) -> str | None:
        """The first comma-separated value of ``name``: the top Via, the first Route."""
        value = self.get(name)
        if value is None:
            return None
        if "," not in value:
            return value.strip(" \t") or None
        parts = split_commas(value)
        return parts[0] if parts else None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name) in self._keys

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return zip(self._names, self._values, strict=True)

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """The lookup key of each line, in order."""
        return list(self._keys)

    def count(self, name: str) -> int:
        """How many lines ``name`` has."""
        return self._keys.count(canonical_name(name))

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._from_parsed(list(self._keys), list(self._names), list(self._values))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return tuple(self._keys) == tuple(other._keys) and tuple(self._values) == tuple(
            other._values
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    # ----- writing ------------------------------------------------------------

    def compact(self) -> None:
        """Keep the lines in tuples until the next change.

        For headers kept long but rarely changed again (what a transaction
        holds while it waits out its 64*T1): the garbage collector stops
        walking a tuple of strings, where it walks a list at every pass.
        Reading is unchanged; the first change makes lists again.
        """
        self._keys = tuple(self._keys)
        self._names = tuple(self._names)
        self._values = tuple(self._values)

    def _writable(self) -> tuple[list[str], list[str], list[str]]:
        keys, names, values = self._keys, self._names, self._values
        if type(keys) is not list or type(names) is not list or type(values) is not list:
            keys = self._keys = list(keys)
            names = self._names = list(names)
            values = self._values = list(values)
        return keys, names, values

    def _name_for(self, name: str) -> tuple[str, str]:
        key = canonical_name(name)
        return key, written_name(name, key)

    def add(self, name: str, value: str) -> None:
        """Append a line ``name: value`` after every other header.

        A name or value with CR or LF (or a name with a colon) raises
        :class:`~trio_sip.ParseError`, as in :meth:`prepend`, :meth:`set`
        and the constructor: it would write lines of its own.
        """
        _check_line(name, value)
        key, written = self._name_for(name)
        keys, names, values = self._writable()
        keys.append(key)
        names.append(written)
        values.append(value)
        self.version = _next_version()

    def prepend(self, name: str, value: str) -> None:
        """Insert a line before the first line of ``name`` (or at the top).

        This is how a Via or Record-Route goes on top (RFC 3261 sections
        8.1.1.7 and 16.6).
        """
        _check_line(name, value)
        key, written = self._name_for(name)
        keys, names, values = self._writable()
        try:
            at = keys.index(key)
        except ValueError:
            at = 0
        keys.insert(at, key)
        names.insert(at, written)
        values.insert(at, value)
        self.version = _next_version()

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line, where the first stood."""
        _check_line(name, value)
        key = canonical_name(name)
        try:
            at = self._keys.index(key)
        except ValueError:
            self.add(name, value)
            return
        values = self._writable()[2]
        values[at] = value
        self._drop(key, after=at)
        self.version = _next_version()

    def remove(self, name: str) -> int:
        """Remove every line of ``name``; return how many there were."""
        key = canonical_name(name)
        before = len(self._keys)
        self._drop(key, after=-1)
        removed = before - len(self._keys)
        if removed:
            self.version = _next_version()
        return removed

    def _drop(self, key: str, *, after: int) -> None:
        keys, names, values = self._keys, self._names, self._values
        keep = [i for i, k in enumerate(keys) if k != key or i <= after]
        if len(keep) != len(keys):
            self._keys = [keys[i] for i in keep]
            self._names = [names[i] for i in keep]
            self._values = [values[i] for i in keep]

    def pop_first_value(self, name: str) -> str | None:
        """Remove and return the first comma-separated value of ``name``.

        Removes the top Via of a response, or the first Route of a request,
        without disturbing the values after it.
        """
        key = canonical_name(name)
        try:
            at = self._keys.index(key)
        except ValueError:
            return None
        keys, names, values = self._writable()
        value = values[at]
        parts = split_commas(value) if "," in value else [value.strip(" \t")]
        first = parts[0] if parts else None
        if len(parts) <= 1:
            del keys[at], names[at], values[at]
        else:
            values[at] = ", ".join(parts[1:])
        self.version = _next_version()
        return first

    # ----- output -------------------------------------------------------------

    def to_text(self) -> str:
        """The header lines, each ending in CRLF."""
        return "".join([f"{n}: {v}\r\n" for n, v in zip(self._names, self._values, strict=True)])
