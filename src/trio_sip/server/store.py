"""Where a registrar keeps its bindings: a small async interface, three backends.

A binding maps an address-of-record to one contact (RFC 3261 section 10.3)
with its own expiry, q-value, Call-ID and CSeq. :class:`MemoryStore` keeps
them in a dict; :class:`SQLiteStore` keeps them in a SQLite file through the
standard library's :mod:`sqlite3`, run in a worker thread so that the event
loop never blocks on the disk, and so they survive a restart;
:class:`~trio_sip.server.redis_store.RedisStore` keeps them in Redis, where
several proxy processes share them. :func:`open_store` opens one from a
``--store`` specification.

Changes go through :meth:`BindingStore.update`, an atomic read-modify-write
of one AOR's bindings: two registrars (in one process or in several) that
register the same AOR at once both see their change kept, and the Call-ID /
CSeq ordering rule of section 10.3 step 7 is checked against what is stored
at the moment of the write.

Times are absolute (seconds since the epoch by default) so that a binding
stored before a restart keeps its expiry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Binding", "BindingStore", "MemoryStore", "SQLiteStore", "Update", "open_store"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address-of-record."""

    #: the address-of-record, normalised (``sip:user@domain``)
    aor: str
    #: the contact URI as the UA registered it
    contact: str
    #: absolute expiry time (same clock as the registrar's)
    expires_at: float
    #: the Call-ID and CSeq of the REGISTER that last set it (RFC 3261 10.3 step 7)
    call_id: str
    cseq: int
    #: the ``q`` contact parameter (preference, 0-1), None when absent
    q: float | None = None
    #: RFC 5626 ``+sip.instance`` and ``reg-id``, when the UA sent them
    instance_id: str | None = None
    reg_id: int | None = None
    #: where the REGISTER came from: ``proto:host:port`` (for NAT traversal)
    source: str | None = None

    def remaining(self, now: float) -> int:
        """Whole seconds left before the binding expires (never negative)."""
        return max(0, int(self.expires_at - now + 0.5))

    def contact_value(self, now: float) -> str:
        """The Contact header value a registrar returns for it (RFC 3261 10.3 step 8)."""
        value = f"<{self.contact}>;expires={self.remaining(now)}"
        if self.q is not None:
            # qvalue allows three decimals at most (RFC 3261 section 25.1);
            # "{:g}" would write 1e-05.
            value += ";q=" + f"{self.q:.3f}".rstrip("0").rstrip(".")
        if self.instance_id is not None:
            value += f";+sip.instance={self.instance_id}"
        if self.reg_id is not None:
            value += f";reg-id={self.reg_id}"
        return value


#: a pure function from an AOR's current bindings to its new ones (see
#: :meth:`BindingStore.update`)
Update = Callable[[list[Binding]], Sequence[Binding]]


class BindingStore(Protocol):
    """The registrar's storage: per-AOR read and replace, and expiry."""

    async def get(self, aor: str) -> list[Binding]:
        """Every binding of ``aor`` (expired ones included until purged)."""
        ...

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Make ``bindings`` the whole binding set of ``aor`` (atomically)."""
        ...

    async def update(self, aor: str, fn: Update) -> list[Binding]:
        """Replace the bindings of ``aor`` by ``fn(current)`` atomically; return the new set.

        ``current`` includes expired bindings not yet purged. Nothing else
        changes ``aor`` between the read ``fn`` sees and the write of its
        result: a store shared by several processes retries on a conflict,
        so ``fn`` may run more than once and must be a pure, synchronous
        function. An exception from ``fn`` aborts the update (nothing is
        written) and propagates.
        """
        ...

    async def purge(self, now: float) -> int:
        """Remove every binding that expired at or before ``now``; return how many."""
        ...

    async def count(self) -> int:
        """How many bindings are stored."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources."""
        ...


class MemoryStore:
    """Bindings in a dict: fast, and gone when the process ends."""

    def __init__(self) -> None:
        self._bindings: dict[str, tuple[Binding, ...]] = {}

    async def get(self, aor: str) -> list[Binding]:
        """Every binding of ``aor``."""
        await anyio.lowlevel.checkpoint()
        return list(self._bindings.get(aor, ()))

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Make ``bindings`` the binding set of ``aor``."""
        await anyio.lowlevel.checkpoint()
        if bindings:
            self._bindings[aor] = tuple(bindings)
        else:
            self._bindings.pop(aor, None)

    async def update(self, aor: str, fn: Update) -> list[Binding]:
        """Replace the bindings of ``aor`` by ``fn(current)``; no await in between."""
        await anyio.lowlevel.checkpoint()
        bindings = tuple(fn(list(self._bindings.get(aor, ()))))
        if bindings:
            self._bindings[aor] = bindings
        else:
            self._bindings.pop(aor, None)
        return list(bindings)

    async def purge(self, now: float) -> int:
        """Remove expired bindings."""
        await anyio.lowlevel.checkpoint()
        removed = 0
        for aor, bindings in list(self._bindings.items()):
            alive = tuple(b for b in bindings if b.expires_at > now)
            removed += len(bindings) - len(alive)
            if not alive:
                del self._bindings[aor]
            elif len(alive) != len(bindings):
                self._bindings[aor] = alive
        return removed

    async def count(self) -> int:
        """How many bindings are stored."""
        await anyio.lowlevel.checkpoint()
        return sum(len(b) for b in self._bindings.values())

    async def aclose(self) -> None:
        """Nothing to release."""
        await anyio.lowlevel.checkpoint()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    expires_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    q REAL,
    instance_id TEXT,
    reg_id INTEGER,
    source TEXT,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at);
"""

_COLUMNS = "aor, contact, expires_at, call_id, cseq, q, instance_id, reg_id, source"


class SQLiteStore:
    """Bindings in a SQLite database file (``":memory:"`` for a private one).

    Every statement runs in a worker thread (``anyio.to_thread``); a lock
    keeps them one at a time, since one connection serves every thread.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._lock = anyio.Lock()

    def _get(self, aor: str) -> list[Binding]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM bindings WHERE aor = ? ORDER BY rowid", (aor,)
        ).fetchall()
        return [Binding(*row) for row in rows]

    def _replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        self._update(aor, lambda _current: bindings)

    def _update(self, aor: str, fn: Update) -> list[Binding]:
        db = self._db
        # IMMEDIATE takes the write lock before the read, so that another
        # process sharing the file cannot change the AOR in between.
        db.execute("BEGIN IMMEDIATE")
        try:
            bindings = list(fn(self._get(aor)))
            db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            db.executemany(
                f"INSERT INTO bindings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        b.aor,
                        b.contact,
                        b.expires_at,
                        b.call_id,
                        b.cseq,
                        b.q,
                        b.instance_id,
                        b.reg_id,
                        b.source,
                    )
                    for b in bindings
                ],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return bindings

    def _purge(self, now: float) -> int:
        return self._db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,)).rowcount

    def _count(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM bindings").fetchone()
        return int(row[0])

    async def get(self, aor: str) -> list[Binding]:
        """Every binding of ``aor``."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._get, aor)

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Make ``bindings`` the binding set of ``aor``, in one transaction."""
        async with self._lock:
            await anyio.to_thread.run_sync(self._replace, aor, bindings)

    async def update(self, aor: str, fn: Update) -> list[Binding]:
        """Replace the bindings of ``aor`` by ``fn(current)`` in one transaction."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._update, aor, fn)

    async def purge(self, now: float) -> int:
        """Remove expired bindings."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._purge, now)

    async def count(self) -> int:
        """How many bindings are stored."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._count)

    async def aclose(self) -> None:
        """Close the database."""
        async with self._lock:
            await anyio.to_thread.run_sync(self._db.close)


def open_store(spec: str | None) -> BindingStore:
    """The binding store that ``spec`` names (the CLI's ``--store``).

    ``None`` or ``"memory"``: a :class:`MemoryStore`; ``"sqlite:PATH"``: a
    :class:`SQLiteStore` on that file; ``"redis://HOST[:PORT][/DB]"``: a
    :class:`~trio_sip.server.redis_store.RedisStore`, which connects on
    first use. Raises :class:`ValueError` for anything else, and
    :class:`sqlite3.Error` when the SQLite file cannot be opened.
    """
    if spec is None or spec == "memory":
        return MemoryStore()
    kind, _, rest = spec.partition(":")
    if kind == "sqlite" and rest:
        return SQLiteStore(rest)
    if spec.startswith("redis://"):
        # Imported here: the memory and SQLite stores do not need the client.
        from .redis_store import RedisStore

        return RedisStore.from_url(spec)
    raise ValueError(
        f"expected 'memory', 'sqlite:PATH' or 'redis://HOST[:PORT][/DB]', not {spec!r}"
    )
