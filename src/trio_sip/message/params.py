"""Ordered, case-insensitive parameter lists (``;name=value`` and ``;flag``).

Used by URIs, Via, name-addr headers and anything else with generic-params
(RFC 3261 section 25.1). Parameter names compare case-insensitively; values
are kept exactly as written so that output is byte-exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final, TypeVar, overload

from ..errors import ParseError
from ._text import WS, iter_semicolon_parts

__all__ = ["Params"]

_T = TypeVar("_T")

_EMPTY: Final[tuple[tuple[str, str | None], ...]] = ()


class Params(Mapping[str, "str | None"]):
    """An immutable ordered mapping of parameters.

    A flag parameter (``;lr``) maps to ``None``. Lookups ignore case; the
    spelling of names and values as written is preserved for output.
    Methods that "change" a list return a new one.
    """

    __slots__ = ("_index", "_items")

    def __init__(
        self, items: Iterable[tuple[str, str | None]] | Mapping[str, str | None] = _EMPTY
    ) -> None:
        # A list or tuple (what the parsers pass) skips the Mapping check, an
        # ABC isinstance that costs more than the rest of the constructor.
        if type(items) is not list and type(items) is not tuple and isinstance(items, Mapping):
            items = items.items()
        self._items: tuple[tuple[str, str | None], ...] = tuple(items)
        self._index: dict[str, str | None] | None = None

    @classmethod
    def parse(cls, text: str) -> Params:
        """Parse ``;a=b;c`` (a leading ``;`` is optional)."""
        text = text.strip(WS)
        if not text:
            return EMPTY_PARAMS
        if text[0] == ";":
            text = text[1:]
        parts = text.split(";") if '"' not in text else list(iter_semicolon_parts(text))
        triples = [part.partition("=") for part in parts]
        items = [(name.strip(WS), value.strip(WS) if eq else None) for name, eq, value in triples]
        if not all(name for name, _ in items):
            raise ParseError(f"empty parameter name in {text!r}")
        return cls(items)

    def _lookup(self) -> dict[str, str | None]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                index.setdefault(name.lower(), value)
            self._index = index
        return index

    def __getitem__(self, key: str) -> str | None:
        return self._lookup()[key.lower()]

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T | None) -> str | _T | None: ...

    def get(self, key: str, /, default: object = None) -> object:
        """``self[key]``, or ``default`` when absent (a flag's value is None).

        Mapping's own ``get`` raises and catches a KeyError for every absent
        name; ``received`` and ``maddr`` are absent from most Vias.
        """
        return self._lookup().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items_as_written(self) -> tuple[tuple[str, str | None], ...]:
        """The parameters in order, names and values as written."""
        return self._items

    def with_param(self, name: str, value: str | None = None) -> Params:
        """A copy with ``name`` set to ``value``, replacing it in place if present."""
        lower = name.lower()
        items = list(self._items)
        for i, (old, _) in enumerate(items):
            if old.lower() == lower:
                items[i] = (old, value)
                return type(self)(items)
        items.append((name, value))
        return type(self)(items)

    def without(self, *names: str) -> Params:
        """A copy without the named parameters."""
        drop = {n.lower() for n in names}
        return type(self)([(n, v) for n, v in self._items if n.lower() not in drop])

    def __str__(self) -> str:
        return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self._items)

    def __repr__(self) -> str:
        return f"Params({self._items!r})"

    def __eq__(self, other: object) -> bool:
        # Names ignore case; values compare as written (callers that need a
        # case-insensitive value comparison, as URI comparison does, do it).
        if isinstance(other, Params):
            return [(n.lower(), v) for n, v in self._items] == [
                (n.lower(), v) for n, v in other._items
            ]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple((n.lower(), v) for n, v in self._items))


EMPTY_PARAMS: Final = Params()
