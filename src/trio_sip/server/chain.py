"""The receive chain and the small handlers that sit in it.

A handler is any object with ``async receive(packet, leg, from_addr) -> bool``:
True when it dealt with the packet (answered, absorbed or dropped it), False
to let the next handler have it. :class:`ReceiveChain` is such a handler
itself, so chains nest, and it is also what a Dispatcher takes as receiver.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from ..message import Message, Request, Response, make_response
from ..transport.leg import Address, Leg

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from .registrar import Registrar

__all__ = [
    "Handler",
    "ReceiveChain",
    "Blocker",
    "Redirect",
    "Dropper",
    "DropperStatistics",
    "AnsweredInvites",
    "reply",
]


class Handler(Protocol):
    """One link of a :class:`ReceiveChain`."""

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Handle ``packet``; True when done with it, False to pass it on."""
        ...


#: Keys the To tags of :func:`reply`: random per process, so that the tags are
#: as unguessable as fresh ones (RFC 3261 section 19.3).
_TAG_KEY: Final = os.urandom(16)


def _stateless_tag(request: Request) -> str:
    # RFC 3261 section 8.2.7: the same tag for the same request, so that a
    # retransmission answered again does not look like a fork. Branch and
    # sent-by name the transaction; Call-ID and CSeq number do it for an RFC
    # 2543 client without a branch. The method is left out: the 200 to a
    # CANCEL and the 487 to its INVITE share their tag (section 9.2).
    via = request.top_via
    text = f"{via.branch}\0{via.host}\0{via.port}\0{request.call_id}\0{request.cseq.seq}"
    data = text.encode("utf-8", "surrogateescape")
    return hashlib.blake2b(data, digest_size=8, key=_TAG_KEY).hexdigest()


async def reply(
    dispatcher: Dispatcher,
    request: Request,
    status: int,
    leg: Leg,
    *,
    reason: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    to_tag: str | None = None,
    answered: AnsweredInvites | None = None,
) -> None:
    """Answer ``request`` with ``status`` through ``dispatcher`` (RFC 3261 8.2.6).

    Every response but 100 gets a To-tag when the request has none:
    ``to_tag``, else one derived from the request, the same for every
    response to it and for its retransmissions (section 8.2.7). An ACK is
    never answered: nothing is sent. When ``answered`` is given and the
    request is an INVITE, the ACK for this non-2xx final response will be
    absorbed by :meth:`AnsweredInvites.absorbs`.
    """
    if request.method == "ACK":
        # Sections 8.2.7 and 17: an ACK gets no response.
        return
    tag = to_tag
    if tag is None and status > 100 and request.to.tag is None:
        tag = _stateless_tag(request)
    response = make_response(request, status, reason, to_tag=tag, headers=headers)
    if answered is not None and request.method == "INVITE" and status >= 300:
        answered.add(request)
    await dispatcher.deliver(response, leg=leg)


class AnsweredInvites:
    """INVITEs a stateless element answered itself, so that their ACK stops here.

    RFC 3261 section 17.2.1: the ACK for a non-2xx final response belongs to
    the INVITE's transaction, which carries the same top-Via branch. A
    Dispatcher with its response cache absorbs it already; a stateless proxy
    (no cache) needs this. Entries live for ``lifetime`` seconds (64*T1, the
    longest a client retransmits) and their number is bounded.
    """

    def __init__(
        self,
        lifetime: float = 32.0,
        max_entries: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()

    @staticmethod
    def _key(msg: Message) -> tuple[str, str] | None:
        branch = msg.top_via.branch
        if branch is None:
            return None
        return branch.lower(), msg.call_id

    def add(self, invite: Request) -> None:
        """Note that ``invite`` was answered with a non-2xx final response here."""
        key = self._key(invite)
        if key is None:
            return
        entries = self._entries
        entries[key] = self._clock() + self.lifetime
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def absorbs(self, ack: Request) -> bool:
        """True when ``ack`` acknowledges a response sent through :meth:`add`."""
        entries = self._entries
        if not entries:
            return False
        now = self._clock()
        # Expire from the old end: entries are in insertion order.
        while entries:
            key, deadline = next(iter(entries.items()))
            if deadline > now:
                break
            del entries[key]
        ack_key = self._key(ack)
        return ack_key is not None and ack_key in entries

    def __len__(self) -> int:
        return len(self._entries)


class ReceiveChain:
    """Hand each packet to ``handlers`` in order until one handles it.

    With ``methods``, only requests of those methods (and responses to them,
    by CSeq method) enter the chain; others are passed on (False).
    """

    def __init__(self, handlers: Sequence[Handler], methods: Iterable[str] | None = None) -> None:
        self.handlers = list(handlers)
        self.methods = frozenset(methods) if methods is not None else None
        self.unhandled = 0

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Offer ``packet`` to each handler; False when none took it."""
        if self.methods is not None:
            method = packet.method if isinstance(packet, Request) else packet.cseq.method
            if method not in self.methods:
                return False
        for handler in self.handlers:
            if await handler.receive(packet, leg, from_addr):
                return True
        self.unhandled += 1
        return False


#: What a registrar and proxy built from these handlers serve, for a 405's Allow.
_SERVED_METHODS: Final = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER")


class Blocker:
    """Answer the listed methods with a fixed status (e.g. 405) and absorb their ACK."""

    def __init__(self, dispatcher: Dispatcher, block: Mapping[str, int]) -> None:
        self.dispatcher = dispatcher
        self.block = dict(block)
        self._answered = AnsweredInvites()
        # RFC 3261 section 21.4.6: a 405 lists the methods that are valid
        # here, which the blocked ones are not.
        self._allow = ", ".join(m for m in _SERVED_METHODS if m not in self.block)

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """True for a blocked request (answered) or the ACK of one."""
        if not isinstance(packet, Request):
            return False
        if packet.method == "ACK":
            return self._answered.absorbs(packet)
        status = self.block.get(packet.method)
        if status is None:
            return False
        headers: list[tuple[str, str]] = []
        if status == 405:
            headers.append(("Allow", self._allow))
        await reply(self.dispatcher, packet, status, leg, headers=headers, answered=self._answered)
        return True


class Redirect:
    """Answer requests for registered users with 302 and their contacts.

    Requests for an address-of-record without bindings are passed on.
    REGISTER, ACK and CANCEL are never redirected.
    """

    def __init__(self, dispatcher: Dispatcher, registrar: Registrar) -> None:
        self.dispatcher = dispatcher
        self.registrar = registrar
        self._answered = AnsweredInvites()

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """302 with the bindings' contacts (RFC 3261 section 21.3.3)."""
        if not isinstance(packet, Request):
            return False
        if packet.method == "ACK":
            return self._answered.absorbs(packet)
        if packet.method in ("REGISTER", "CANCEL"):
            return False
        bindings = await self.registrar.lookup(packet.uri)
        if not bindings:
            return False
        now = self.registrar.clock()
        contacts = [("Contact", b.contact_value(now)) for b in bindings]
        await reply(self.dispatcher, packet, 302, leg, headers=contacts, answered=self._answered)
        return True


@dataclass(frozen=True, slots=True)
class DropperStatistics:
    """What a :class:`Dropper` has done."""

    passed: int
    dropped_by_rate: int
    dropped_by_pattern: int
    tracked_sources: int


class Dropper:
    """Drop floods silently: a token bucket per source address, and header patterns.

    Each source IP gets ``burst`` packets at once and ``rate`` packets per
    second after that; at most ``max_sources`` buckets are kept (the least
    recently seen one is evicted, so memory stays bounded under a spoofed
    flood). ``patterns`` maps a header name to regular expressions: a
    request whose header matches one of them is dropped. Patterns are
    compiled once, here, never per packet.
    """

    def __init__(
        self,
        *,
        rate: float | None = None,
        burst: int = 20,
        max_sources: int = 10000,
        patterns: Mapping[str, Iterable[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._patterns = [
            (name, re.compile(pattern))
            for name, pats in (patterns or {}).items()
            for pattern in pats
        ]
        self._passed = 0
        self._by_rate = 0
        self._by_pattern = 0

    def _over_rate(self, source: str) -> bool:
        rate = self.rate
        if rate is None:
            return False
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(source)
        if bucket is None:
            bucket = buckets[source] = [float(self.burst), now]
            if len(buckets) > self.max_sources:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(source)
            tokens = min(float(self.burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[0], bucket[1] = tokens, now
        if bucket[0] < 1.0:
            return True
        bucket[0] -= 1.0
        return False

    def _matches(self, packet: Request | Response) -> bool:
        headers = packet.headers
        for name, pattern in self._patterns:
            for value in headers.get_all(name):
                if pattern.search(value):
                    return True
        return False

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """True (handled: dropped) for a packet over the rate or matching a pattern."""
        if self._over_rate(from_addr[0]):
            self._by_rate += 1
            return True
        if self._patterns and isinstance(packet, Request) and self._matches(packet):
            self._by_pattern += 1
            return True
        self._passed += 1
        return False

    def statistics(self) -> DropperStatistics:
        """Counters of passed and dropped packets."""
        return DropperStatistics(self._passed, self._by_rate, self._by_pattern, len(self._buckets))
