"""Bindings in Redis, shared by every proxy and registrar that points at it.

The layout, under a key prefix (``trio-sip:`` by default):

- ``{prefix}aor:{aor}``: a sorted set per address-of-record; a member is one
  binding (its fields as a JSON array), its score the binding's absolute
  expiry time. Per-contact expiry is a range of scores: a read gives them
  in expiry order, a purge drops the ones at or below now.
- ``{prefix}expiry``: a sorted set of AORs scored by their earliest expiry,
  so that a purge visits only the AORs that have something to drop.
- Each AOR key also gets a Redis TTL (``PEXPIREAT``) a little after its last
  binding expires, so that Redis forgets a dead AOR even when no registrar
  purges (every proxy may have stopped).

Updates are optimistic transactions: ``WATCH`` the AOR's key, read it,
compute the new set in Python (the registrar's section 10.3 rules, Call-ID
and CSeq ordering included), then ``MULTI`` ... ``EXEC``. When another
client changed the AOR in between, ``EXEC`` returns nil and the update runs
again on the new contents, so two proxies that register the same AOR at once
both see their contacts kept. Two round trips per update when nothing
conflicts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.lowlevel

from ..errors import SIPError
from .redis import (
    Command,
    RedisClient,
    RedisClientStatistics,
    RedisConnection,
    StaleConnectionError,
)
from .store import Binding, Update

__all__ = ["RedisStore", "RedisStoreStatistics", "StoreConflictError"]

# How long Redis keeps an AOR after its last binding expired: the clocks of
# the registrars and of Redis may differ a little, and a purge should find
# the AOR still there to drop it from the expiry index.
_TTL_GRACE = 60.0


class StoreConflictError(SIPError):
    """An update met a concurrent change on every one of its attempts."""


@dataclass(frozen=True, slots=True)
class RedisStoreStatistics:
    """Counters of a :class:`RedisStore`."""

    #: updates done, and attempts that met a concurrent change and ran again
    updates: int
    conflicts: int
    #: the connection pool's counters
    client: RedisClientStatistics


def _encode(binding: Binding) -> str:
    return json.dumps(
        [
            binding.contact,
            binding.expires_at,
            binding.call_id,
            binding.cseq,
            binding.q,
            binding.instance_id,
            binding.reg_id,
            binding.source,
        ],
        separators=(",", ":"),
    )


def _decode(aor: str, member: bytes) -> Binding:
    contact, expires_at, call_id, cseq, q, instance_id, reg_id, source = json.loads(member)
    return Binding(aor, contact, expires_at, call_id, cseq, q, instance_id, reg_id, source)


class RedisStore:
    """A :class:`~trio_sip.server.store.BindingStore` in Redis.

    ``client`` is the connection pool to use; the store closes it in
    :meth:`aclose` when it made it (:meth:`from_url`). ``max_attempts``
    bounds the optimistic retries of one update under contention.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "trio-sip:",
        max_attempts: int = 100,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.max_attempts = max_attempts
        self._owns_client = owns_client
        self._index = f"{prefix}expiry"
        self._updates = 0
        self._conflicts = 0

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "trio-sip:") -> RedisStore:
        """A store on its own client for ``redis://HOST[:PORT][/DB]``; connects on first use."""
        return cls(RedisClient.from_url(url), prefix=prefix, owns_client=True)

    def statistics(self) -> RedisStoreStatistics:
        """Updates, conflicts (updates run again) and the client's counters."""
        return RedisStoreStatistics(self._updates, self._conflicts, self.client.statistics())

    def _key(self, aor: str) -> str:
        return f"{self.prefix}aor:{aor}"

    async def get(self, aor: str) -> list[Binding]:
        """Every binding of ``aor``, soonest expiry first (expired ones until purged)."""
        members = await self.client.execute("ZRANGE", self._key(aor), 0, -1)
        assert isinstance(members, list)
        return [_decode(aor, m) for m in members if isinstance(m, bytes)]

    async def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Make ``bindings`` the binding set of ``aor``."""
        await self.update(aor, lambda _current: bindings)

    async def update(self, aor: str, fn: Update) -> list[Binding]:
        """Replace the bindings of ``aor`` by ``fn(current)`` atomically (WATCH/MULTI/EXEC).

        ``fn`` runs again on the new contents when another client changed
        the AOR meanwhile, at most ``max_attempts`` times in all
        (:class:`StoreConflictError` after that).
        """
        key = self._key(aor)
        for _attempt in range(self.max_attempts):
            try:
                async with self.client.connection() as conn:
                    done = await self._try_update(conn, aor, key, fn)
            except StaleConnectionError:
                # A pooled connection from before a Redis restart: nothing
                # ran; the next attempt gets a new connection.
                continue
            if done is not None:
                self._updates += 1
                return done
            self._conflicts += 1
            await anyio.lowlevel.checkpoint()
        raise StoreConflictError(f"{aor}: changed by others on each of {self.max_attempts} tries")

    async def _try_update(
        self, conn: RedisConnection, aor: str, key: str, fn: Update
    ) -> list[Binding] | None:
        _, members = await conn.pipeline([("WATCH", key), ("ZRANGE", key, 0, -1)])
        assert isinstance(members, list)
        try:
            bindings = list(fn([_decode(aor, m) for m in members if isinstance(m, bytes)]))
        except BaseException:
            # The connection goes back to the pool: it must not stay watching.
            with anyio.CancelScope(shield=True):
                await conn.execute("UNWATCH")
            raise
        commands: list[Command] = [("MULTI",), ("DEL", key)]
        if bindings:
            zadd: list[str | float] = ["ZADD", key]
            for binding in bindings:
                zadd += [binding.expires_at, _encode(binding)]
            commands.append(zadd)
            last = max(b.expires_at for b in bindings)
            commands.append(("PEXPIREAT", key, int((last + _TTL_GRACE) * 1000)))
            commands.append(("ZADD", self._index, min(b.expires_at for b in bindings), aor))
        else:
            commands.append(("ZREM", self._index, aor))
        commands.append(("EXEC",))
        replies = await conn.pipeline(commands)
        # EXEC answers nil when a WATCHed key changed: nothing was written.
        return bindings if replies[-1] is not None else None

    async def purge(self, now: float) -> int:
        """Remove every binding that expired at or before ``now``; return how many."""
        due = await self.client.execute("ZRANGEBYSCORE", self._index, "-inf", now)
        assert isinstance(due, list)
        removed = 0
        for member in due:
            assert isinstance(member, bytes)
            before = 0

            def alive(current: list[Binding]) -> list[Binding]:
                nonlocal before
                before = len(current)
                return [b for b in current if b.expires_at > now]

            after = await self.update(member.decode(), alive)
            removed += before - len(after)
        return removed

    async def count(self) -> int:
        """How many bindings are stored (summed over the AORs of the expiry index)."""
        aors = await self.client.execute("ZRANGE", self._index, 0, -1)
        assert isinstance(aors, list)
        if not aors:
            return 0
        sizes = await self.client.pipeline(
            [("ZCARD", self._key(a.decode())) for a in aors if isinstance(a, bytes)]
        )
        return sum(s for s in sizes if isinstance(s, int))

    async def aclose(self) -> None:
        """Close the client when the store made it."""
        if self._owns_client:
            await self.client.aclose()
        else:
            await anyio.lowlevel.checkpoint()
