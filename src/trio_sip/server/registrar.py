"""The registrar: RFC 3261 section 10.3, step by step.

It answers REGISTER requests and keeps the bindings in a
:class:`~trio_sip.server.store.BindingStore`. It sits directly on a
Dispatcher (as in Net::SIP), whose response cache answers retransmitted
REGISTERs; other elements (a proxy, :class:`~trio_sip.server.chain.Redirect`)
ask it for bindings with :meth:`Registrar.lookup`.
"""

from __future__ import annotations

import email.utils
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ParseError, SIPError
from ..message import URI, NameAddr, Request, Response
from ..transport.leg import Address, Leg, format_address
from .chain import reply
from .store import Binding, BindingStore, MemoryStore

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher, TimerHandle

__all__ = ["Registrar", "RegistrarStatistics", "aor_of"]

log = logging.getLogger(__name__)

# RFC 3261 section 25.1: user = 1*( unreserved / escaped / user-unreserved );
# quote() keeps letters, digits and "_.-~" of unreserved itself.
_USER_UNESCAPED = "!*'()&=+$,;?/"


def aor_of(uri: URI) -> str:
    """The canonical address-of-record of ``uri`` (section 10.3 step 5).

    ``scheme:user@host``: parameters, port and headers dropped, escapes in
    the user unescaped, the host lower-cased (domains compare
    case-insensitively, users do not).
    """
    user = uri.user
    if user and "%" in user and user.isascii():
        # Step 5: "any escaped characters MUST be converted to their unescaped
        # form", as URI comparison (19.1.4) decodes them: sip:%61lice@ is
        # alice. What the user grammar cannot hold bare (a space, "@", a byte
        # that is not UTF-8) stays escaped, in upper case: one ASCII key each.
        raw = urllib.parse.unquote_to_bytes(user)
        user = urllib.parse.quote_from_bytes(raw, safe=_USER_UNESCAPED)
    user = f"{user}@" if user else ""
    return f"{uri.scheme}:{user}{uri.host.lower()}"


@dataclass(frozen=True, slots=True)
class RegistrarStatistics:
    """Counters of a :class:`Registrar`."""

    registers: int
    accepted: int
    rejected: int
    purged: int


class _Reject(Exception):
    def __init__(self, status: int, reason: str | None = None, *headers: tuple[str, str]):
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.headers = headers


class Registrar:
    """Accept REGISTER requests (RFC 3261 section 10.3) and answer lookups.

    ``domains``: when given, only AORs in these domains are accepted (403
    otherwise). ``default_expires`` applies when the request gives none;
    longer requests are cut to ``max_expires``; shorter than
    ``min_expires`` (but not 0, and under an hour) get 423 with
    Min-Expires. No extension is supported: a Require gets 420. ``clock`` gives
    the absolute time bindings expire against (epoch seconds by default,
    so that a persistent store survives a restart).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: BindingStore | None = None,
        *,
        domains: Iterable[str] | None = None,
        default_expires: int = 3600,
        min_expires: int = 60,
        max_expires: int = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dispatcher = dispatcher
        self.store: BindingStore = store if store is not None else MemoryStore()
        self.domains = frozenset(d.lower() for d in domains) if domains is not None else None
        self.default_expires = default_expires
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.clock = clock
        self._registers = 0
        self._accepted = 0
        self._rejected = 0
        self._purged = 0

    # ----- lookups ----------------------------------------------------------------

    def is_local(self, host: str) -> bool:
        """True when ``host`` is one of our domains (always, when none are configured)."""
        return self.domains is None or host.lower().rstrip(".") in self.domains

    async def lookup(self, uri: URI) -> list[Binding]:
        """The live bindings of ``uri``'s AOR, most preferred (highest q, newest) first."""
        now = self.clock()
        bindings = [b for b in await self.store.get(aor_of(uri)) if b.expires_at > now]
        # Section 10.2.1.2: q ranks contacts; absent q counts as 1 here (RFC 3840 usage).
        bindings.sort(key=lambda b: (-(b.q if b.q is not None else 1.0), -b.expires_at))
        return bindings

    # ----- expiry -----------------------------------------------------------------

    async def purge(self) -> int:
        """Remove expired bindings from the store now; return how many."""
        removed = await self.store.purge(self.clock())
        self._purged += removed
        return removed

    def start_purging(self, interval: float = 30.0) -> TimerHandle:
        """Purge expired bindings every ``interval`` seconds on the dispatcher's timer."""
        return self.dispatcher.add_timer(interval, self.purge, repeat=interval)

    # ----- REGISTER -------------------------------------------------------------------

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Handle a REGISTER (True); anything else is passed on (False)."""
        if not isinstance(packet, Request) or packet.method != "REGISTER":
            return False
        self._registers += 1
        try:
            packet.validate()
            # Section 10.3: the bindings of one AOR change atomically; the
            # store's update() guarantees it, across processes too.
            bindings = await self._register(packet, leg, from_addr)
        except ParseError as exc:
            self._rejected += 1
            await reply(self.dispatcher, packet, exc.status_hint, leg, reason=exc.reason[:100])
            return True
        except SIPError as exc:
            # The binding store failed (Redis unreachable, or an update that
            # kept meeting concurrent changes). Section 21.5.4: 503 says the
            # failure is temporary; the UA retries, as it does for a lost
            # REGISTER.
            log.warning("binding store failed on REGISTER: %s", exc)
            self._rejected += 1
            await reply(
                self.dispatcher,
                packet,
                503,
                leg,
                reason="Location Service Unavailable",
                headers=[("Retry-After", "5")],
            )
            return True
        except _Reject as exc:
            self._rejected += 1
            await reply(
                self.dispatcher, packet, exc.status, leg, reason=exc.reason, headers=exc.headers
            )
            return True
        self._accepted += 1
        now = self.clock()
        headers = [("Contact", b.contact_value(now)) for b in bindings]
        # Section 10.3 step 8: the 200 carries every current binding and a Date.
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
        await reply(self.dispatcher, packet, 200, leg, headers=headers)
        return True

    def _expires_of(self, contact: NameAddr | None, header: int | None) -> int:
        # Section 10.2.1.1 / 10.3 step 7: the contact's parameter, else the
        # Expires header, else the local default; then the upper limit.
        value: int | None = None
        if contact is not None:
            param = contact.params.get("expires")
            if param is not None:
                # delta-seconds = 1*DIGIT, ASCII only (str.isdigit() takes
                # "\u00b2", which int() refuses). A value past the 2**32-1 of
                # section 20.19 is cut there, as max_expires cuts it anyway,
                # before int() meets its digit limit on a huge one.
                if not (param.isascii() and param.isdigit()):
                    raise _Reject(400, "Bad expires parameter")
                digits = param.lstrip("0") or "0"
                value = int(digits) if len(digits) <= 10 else 2**32 - 1
        if value is None:
            value = header if header is not None else self.default_expires
        # Step 7: 423 "if and only if" the interval is above zero, below one
        # hour and below our minimum.
        if 0 < value < min(self.min_expires, 3600):
            raise _Reject(423, None, ("Min-Expires", str(self.min_expires)))
        return min(value, self.max_expires)

    async def _register(self, request: Request, leg: Leg, from_addr: Address) -> list[Binding]:
        # Step 2: Require is processed as a UAS does (section 8.2.2.3). No
        # option tag is supported, Path (RFC 3327) included: a silent 200
        # would drop the Path the UA's edge proxy depends on.
        required = request.headers.values("require")
        if required:
            raise _Reject(420, None, ("Unsupported", ", ".join(dict.fromkeys(required))))
        to_uri = request.to.uri
        # Step 3: the To URI must be an AOR of a domain we are responsible for.
        if not to_uri.is_sip:
            raise _Reject(416)
        if not self.is_local(to_uri.host):
            raise _Reject(403, "Domain not served here")
        aor = aor_of(to_uri)
        call_id = request.call_id
        cseq = request.cseq.seq
        header_expires = request.expires
        if request.contact_is_star:
            # Step 6: "*" only with Expires 0 and no other Contact.
            if header_expires != 0:
                raise _Reject(400, "Contact * needs Expires 0")

            def remove_all(stored: list[Binding]) -> list[Binding]:
                for binding in self._alive(stored):
                    _check_order(binding, call_id, cseq)
                return []

            return await self.store.update(aor, remove_all)
        contacts = request.contacts
        if not contacts:
            # Step 6: no Contact is a query; nothing changes.
            return self._alive(await self.store.get(aor))
        source = f"{leg.proto}:{format_address(from_addr)}"

        def apply(stored: list[Binding]) -> list[Binding]:
            # Runs inside the store's atomic update (again, should another
            # registrar sharing the store change this AOR meanwhile): the
            # step 7 checks below see what is stored at the moment of the write.
            now = self.clock()
            updated = self._alive(stored, now)
            for contact in contacts:
                expires = self._expires_of(contact, header_expires)
                index = next((i for i, b in enumerate(updated) if _same_contact(b, contact)), None)
                if index is not None:
                    # Step 7: the same Call-ID must come with a higher CSeq.
                    _check_order(updated[index], call_id, cseq)
                    del updated[index]
                if expires == 0:
                    continue
                updated.append(_binding(aor, contact, now + expires, call_id, cseq, source))
            return updated

        return await self.store.update(aor, apply)

    def _alive(self, bindings: list[Binding], now: float | None = None) -> list[Binding]:
        now = self.clock() if now is None else now
        return [b for b in bindings if b.expires_at > now]

    def statistics(self) -> RegistrarStatistics:
        """Counters of REGISTERs seen, accepted and rejected, and bindings purged."""
        return RegistrarStatistics(self._registers, self._accepted, self._rejected, self._purged)


def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
    # Section 10.3 step 7: a REGISTER of the same Call-ID with a CSeq not above
    # the stored one is out of order; "the update MUST be aborted and the
    # request fails" (500, as the RFC's examples and most registrars answer).
    if binding.call_id == call_id and cseq <= binding.cseq:
        raise _Reject(500, "Out of order REGISTER")


def _same_contact(binding: Binding, contact: NameAddr) -> bool:
    # Section 10.3 step 7 compares contact URIs with the rules of 19.1.4.
    try:
        return URI.parse(binding.contact) == contact.uri
    except ParseError:
        return False


def _binding(
    aor: str, contact: NameAddr, expires_at: float, call_id: str, cseq: int, source: str
) -> Binding:
    params = contact.params
    q: float | None = None
    q_text = params.get("q")
    if q_text is not None:
        try:
            q = float(q_text)
        except ValueError:
            raise _Reject(400, "Bad q parameter") from None
        if not 0.0 <= q <= 1.0:
            raise _Reject(400, "Bad q parameter")
    reg_id: int | None = None
    reg_text = params.get("reg-id")
    if reg_text is not None:
        if not reg_text.isdigit():
            raise _Reject(400, "Bad reg-id parameter")
        reg_id = int(reg_text)
    return Binding(
        aor,
        str(contact.uri),
        expires_at,
        call_id,
        cseq,
        q,
        params.get("+sip.instance"),
        reg_id,
        source,
    )
