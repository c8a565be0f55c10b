"""A stateless proxy (RFC 3261 section 16.11) that sits on a Dispatcher.

Per request it reads only what routing needs: the top Via, Max-Forwards,
Route and the Request-URI. It keeps no state per transaction: the branch
of its Via is a hash of the incoming branch, the outgoing leg and the
Request-URI, so a retransmission leaves with the same branch, and a CANCEL
or the ACK of a non-2xx response with the branch of its INVITE (which is
what matches them downstream, sections 9.2 and 17.2.3). Responses lose our
Via and go to the next one (section 18.2.2, RFC 3581).

Use it on a Dispatcher made with ``response_cache=False`` and
``do_retransmits=False``: a stateless element neither absorbs nor repeats.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import os
from collections.abc import Awaitable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from ..errors import DeliveryError, ParseError, SIPError
from ..message import KNOWN_METHODS, MAGIC_COOKIE, URI, NameAddr, Request, Response
from ..resolver import Target
from ..transport.leg import Address, Leg, TransportFailure
from ..transport.udp import UDPLeg
from .chain import AnsweredInvites, reply

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from .registrar import Registrar

log = logging.getLogger("trio_sip.server.proxy")

__all__ = ["StatelessProxy", "ProxyStatistics"]

#: RFC 3261 section 16.6 step 3: the Max-Forwards a proxy adds when there is none.
DEFAULT_MAX_FORWARDS = 70
#: How long the targets of a Route/Request-URI are reused without asking the
#: Dispatcher again. The resolver below keeps DNS answers for their TTL; this
#: only saves walking the routing rules for every packet.
TARGETS_LIFETIME: Final = 1.0
#: Bound of the small per-packet caches (targets, IP literals).
CACHE_ENTRIES: Final = 4096


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    """Counters of a :class:`StatelessProxy`."""

    requests_forwarded: int
    responses_forwarded: int
    answered: int
    dropped: int


#: What a proxy lets through, in the Allow of its answer to OPTIONS for itself.
ALLOW: Final = ", ".join(sorted(KNOWN_METHODS))


class StatelessProxy:
    """Forward requests and responses without transaction state.

    ``registrar``: the location service (section 16.5): a request for one of
    our domains goes to the best binding of its address-of-record, or gets
    404 when there is none. ``domains``: the domains we serve; when given,
    a request for another domain is relayed only when it comes from one of
    ours (From), from a ``trusted`` network, or along a Route we recorded;
    otherwise it gets 403 (no open relay). ``record_route`` inserts our
    Record-Route (twice, one per leg, when the request leaves on another
    leg than it came in on). ``names`` are extra host names that mean us.
    ``rewrite_contact``: Contact URIs of requests and responses that cross
    from one leg to another are replaced by a URI of the outgoing leg that
    encodes the original (signed, so that nobody can make us relay to an
    address of their choice); requests to such a URI go to the original.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        registrar: Registrar | None = None,
        domains: Iterable[str] | None = None,
        record_route: bool = False,
        names: Iterable[str] = (),
        trusted: Iterable[str] = (),
        rewrite_contact: bool = False,
        secret: bytes | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.registrar = registrar
        self.domains = frozenset(d.lower() for d in domains) if domains is not None else None
        self.record_route = record_route
        self.names = frozenset(n.lower() for n in names)
        self.trusted = tuple(ipaddress.ip_network(net) for net in trusted)
        self.rewrite_contact = rewrite_contact
        self._secret = secret if secret is not None else os.urandom(16)
        self._answered = AnsweredInvites(lifetime=64 * dispatcher.timers.t1)
        self._leg_cache: tuple[tuple[Leg, ...], dict[tuple[str, str, Leg], Leg]] = ((), {})
        self._ours: tuple[tuple[Leg, ...], frozenset[tuple[str, int]], frozenset[int]] | None = None
        self._targets_cache: dict[Hashable, tuple[float, list[Target]]] = {}
        self._requests = 0
        self._responses = 0
        self._replies = 0
        self._dropped = 0

    # ----- who we are -----------------------------------------------------------------

    def _our_addresses(self) -> tuple[frozenset[tuple[str, int]], frozenset[int]]:
        # Rebuilt only when the legs change: this runs for every request.
        legs = self.dispatcher.legs
        cached = self._ours
        if cached is not None and cached[0] == legs:
            return cached[1], cached[2]
        pairs: set[tuple[str, int]] = set()
        for leg in legs:
            for host in (leg.host, leg.advertise):
                if host:
                    host = host.strip("[]").lower()
                    pairs.add((host, leg.port))
                    if ":" in host:
                        pairs.add((str(ipaddress.ip_address(host)), leg.port))
        ports = frozenset(leg.port for leg in legs)
        self._ours = (legs, frozenset(pairs), ports)
        return self._ours[1], ports

    def is_ours(self, uri: URI) -> bool:
        """True when ``uri`` names this proxy: a leg's address, or one of ``names``."""
        pairs, ports = self._our_addresses()
        host = uri.host.lower()
        if host in self.names:
            return uri.port is None or uri.port in ports
        port = uri.default_port()
        if (host, port) in pairs:
            return True
        if ":" in host:
            try:
                return (str(ipaddress.ip_address(host)), port) in pairs
            except ValueError:
                return False
        return False

    def _is_local(self, uri: URI) -> bool:
        if self.domains is not None and uri.host.lower().rstrip(".") in self.domains:
            return True
        return self.is_ours(uri)

    def _trusted(self, addr: Address) -> bool:
        if not self.trusted:
            return False
        ip = ipaddress.ip_address(addr[0])
        return any(ip in net for net in self.trusted)

    # ----- receiving ------------------------------------------------------------------

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> bool:
        """Forward ``packet``; always True (a proxy is the end of a chain)."""
        if isinstance(packet, Response):
            await self._response(packet, leg)
            return True
        try:
            await self._request(packet, leg, from_addr)
        except ParseError as exc:
            if packet.method != "ACK":
                await self._reply(packet, exc.status_hint, leg, reason=exc.reason[:100])
            else:
                self._dropped += 1
        return True

    def receive_nowait(
        self, packet: Request | Response, leg: Leg, from_addr: Address
    ) -> Awaitable[bool] | None:
        """Forward ``packet`` at once when nothing needs waiting, else return
        the awaitable that does it.

        The fast path: give the Dispatcher this method, ``disp.set_receiver(
        proxy.receive_nowait)``; it runs in the leg's receive loop, with no task
        switch per packet, and hands whatever it returns to a handler task.
        Over UDP, with targets known (an IP literal, or a route used within the
        last second), a request or response is forwarded inline; anything else
        (DNS, a stream, a registrar lookup, an answer of our own, Contact
        rewriting, relay policy) takes the path of :meth:`receive`. The
        Dispatcher keeps each source's order across the two paths: while a
        packet waits in a handler task, the later ones of its source queue
        behind it. ``trio-sip proxy`` uses this path.
        """
        try:
            if isinstance(packet, Response):
                done = self._response_nowait(packet, leg)
            else:
                done = self._request_nowait(packet, leg, from_addr)
        except ParseError:
            # Checked before anything changed: the full path answers it (400 ...).
            done = False
        if done is True:
            return None
        if done is False:
            return self.receive(packet, leg, from_addr)
        return done

    def _targets_key(self, request: Request) -> Hashable:
        # What Dispatcher.targets_for reads: the first Route, else the
        # Request-URI (its host, port and parameters; not the user part).
        uri = request.uri
        return (request.headers.first_value("route"), uri.scheme, uri.host, uri.port, uri.params)

    def _request_nowait(
        self, request: Request, leg: Leg, from_addr: Address
    ) -> Awaitable[bool] | bool:
        """The common case of :meth:`_request` without waiting: True when
        done, False when the full path must run (nothing was changed then)."""
        if self.rewrite_contact or self.domains is not None:
            return False
        headers = request.headers
        if "route" in headers or "proxy-require" in headers:
            return False
        max_forwards = request.max_forwards
        if max_forwards == 0:
            return False
        if request.method == "ACK" and self._answered.absorbs(request):
            return True
        uri = request.uri
        if self.registrar is not None and uri.user is not None and self.is_ours(uri):
            return False
        if request.method == "OPTIONS" and uri.user is None:
            return False  # perhaps a ping for us: the full path answers it
        cached = self._targets_cache.get(self._targets_key(request))
        if cached is None or cached[0] < anyio.current_time() or not cached[1]:
            return False
        targets = cached[1]
        target = targets[0]
        out_leg = self._leg_for(target, leg)
        if not isinstance(out_leg, UDPLeg):
            return False
        branch, loop_part = self._branch(request, out_leg)
        if any(loop_part in value for value in headers.get_all("via")):
            return False  # the full path answers 482
        record = self._records(request)
        # Committed: from here on the request is changed.
        if max_forwards is None:
            max_forwards = DEFAULT_MAX_FORWARDS + 1
        headers.set("Max-Forwards", str(max_forwards - 1))
        added_rr = self._stamp(request, leg, out_leg, target, branch, record)
        data = bytes(request)
        try:
            sent = out_leg.send_nowait(data, target.address)
        except TransportFailure:
            self._unstamp(request, added_rr)
            return self._forward(request, leg, targets[1:], record)
        if sent:
            self._requests += 1
            return True
        return self._send_later(out_leg, data, target, request=True)

    def _response_nowait(self, response: Response, leg: Leg) -> Awaitable[bool] | bool:
        """:meth:`_response` without waiting, for UDP and IP literals."""
        if self.rewrite_contact:
            return False
        if not leg.remove_our_via(response) or "via" not in response.headers:
            self._dropped += 1
            return True
        # A stream goes back on its connection (18.2.2): the Dispatcher knows it.
        stream = response.top_via.reliable
        target = None if stream else self.dispatcher.response_target_nowait(response)
        if target is None:
            return self._deliver_response(response)
        out_leg = self._leg_for(target, leg)
        if not isinstance(out_leg, UDPLeg):
            return self._deliver_response(response)
        data = bytes(response)
        try:
            sent = out_leg.send_nowait(data, target.address)
        except TransportFailure:
            self._dropped += 1
            return True
        if sent:
            self._responses += 1
            return True
        return self._send_later(out_leg, data, target, request=False)

    async def _send_later(self, leg: Leg, data: bytes, target: Target, *, request: bool) -> bool:
        # The socket buffer was full: wait for room (no other target is tried).
        try:
            await leg.send(data, target.address, tls_hostname=target.hostname)
        except TransportFailure:
            self._dropped += 1
            return True
        if request:
            self._requests += 1
        else:
            self._responses += 1
        return True

    async def _reply(
        self,
        request: Request,
        status: int,
        leg: Leg,
        reason: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._replies += 1
        await reply(
            self.dispatcher,
            request,
            status,
            leg,
            reason=reason,
            headers=headers,
            answered=self._answered,
        )

    async def _request(self, request: Request, leg: Leg, from_addr: Address) -> None:
        method = request.method
        if method == "ACK" and self._answered.absorbs(request):
            return
        headers = request.headers
        if (
            method == "OPTIONS"
            and request.uri.user is None
            and "route" not in headers
            and self.is_ours(request.uri)
        ):
            # RFC 3261 section 11: an OPTIONS naming the proxy asks about the
            # proxy itself; forwarding it would only loop back here (482).
            await self._reply(request, 200, leg, headers=[("Allow", ALLOW)])
            return
        # Section 16.3 step 3 / 16.6 step 3: Max-Forwards.
        max_forwards = request.max_forwards
        if max_forwards is None:
            # Step 3: added with 70 when absent (not decremented).
            max_forwards = DEFAULT_MAX_FORWARDS + 1
        elif max_forwards == 0:
            if method == "ACK":
                self._dropped += 1
            else:
                await self._reply(request, 483, leg)
            return
        # Section 16.3 step 5: we implement no extension a proxy must support.
        # An ACK cannot be answered (and RFC 3261 forbids the header in the
        # ACK of a non-2xx response): it goes on.
        if "proxy-require" in headers and method != "ACK":
            tags = headers.values("proxy-require")
            if tags:
                await self._reply(request, 420, leg, headers=[("Unsupported", ", ".join(tags))])
                return
        headers.set("Max-Forwards", str(max_forwards - 1))
        routed_here = False
        # Section 16.4: a strict router before us put our Record-Route URI in
        # the Request-URI; the real one is the last Route value.
        if "route" in headers and request.uri.lr and self.is_ours(request.uri):
            values = headers.values("route")
            last = NameAddr.parse(values[-1])
            headers.remove("route")
            for value in values[:-1]:
                headers.add("Route", value)
            request.uri = last.uri
            routed_here = True
        # Section 16.4: remove our own Route values (two after a double Record-Route).
        while True:
            first = headers.first_value("route")
            route_uri = NameAddr.parse(first).uri if first is not None else None
            if route_uri is None or not self.is_ours(route_uri):
                break
            headers.pop_first_value("route")
            routed_here = True
        if self.rewrite_contact and "route" not in headers:
            original = self._decode_contact(request.uri)
            if original is not None:
                # A Contact we rewrote: the request goes to the real one.
                request.uri = original
                routed_here = True
        uri = request.uri
        has_route = "route" in headers
        next_hop: URI | None = None
        if has_route:
            if route_uri is not None and not route_uri.lr:
                # Section 16.6 step 6: the next hop is a strict router (RFC
                # 2543); it expects its URI as Request-URI, and ours goes last
                # in Route. Step 7: the request goes to that Request-URI.
                headers.pop_first_value("route")
                headers.add("Route", f"<{request.uri_text}>")
                request.uri = next_hop = route_uri
        else:
            local = self._is_local(uri)
            if (
                not local
                and not routed_here
                and self.domains is not None
                and not self._trusted(from_addr)
                and not self._is_local(request.from_.uri)
            ):
                # No open relay: strangers may only reach our own domains.
                await self._reply(request, 403, leg, reason="Relaying denied")
                return
            if local and self.registrar is not None and uri.user is not None:
                try:
                    bindings = await self.registrar.lookup(uri)
                except SIPError as exc:
                    # The location service is down (a shared store out of
                    # reach). Section 21.5.4: 503 with Retry-After says it
                    # is temporary; an ACK has nobody to tell.
                    log.warning("location lookup for %s failed: %s", uri, exc)
                    if method == "ACK":
                        self._dropped += 1
                    else:
                        await self._reply(
                            request,
                            503,
                            leg,
                            reason="Location Service Unavailable",
                            headers=[("Retry-After", "5")],
                        )
                    return
                if not bindings:
                    if method == "ACK":
                        self._dropped += 1
                    else:
                        await self._reply(request, 404, leg)
                    return
                # Section 16.5/16.6 step 2: the target replaces the Request-URI.
                request.uri = URI.parse(bindings[0].contact)
        await self._forward(request, leg, next_hop=next_hop)

    def _branch(self, request: Request, leg: Leg) -> tuple[str, str]:
        """Our branch for ``request`` leaving on ``leg``, and its loop-detection part.

        Section 16.11: a stateless proxy's branch is a function of the
        request, so that retransmissions get the same one. The first half
        hashes the incoming top Via (its branch names the transaction; CANCEL
        and the non-2xx ACK carry their INVITE's) and the leg. The second
        half hashes what a looping request keeps on every turn (section 16.6
        step 8: Request-URI, Route, From, Call-ID, CSeq number); a spiral,
        with a new Request-URI or Route set, gets a new one.
        """
        headers = request.headers
        via = headers.first_value("via") or ""
        # The cheap test for an RFC 3261 branch: no Via parsing per packet.
        if ";branch=z9hG4bK" not in via and ";branch=z9hG4bK" not in via.replace(" ", ""):
            via += f"|{request.call_id}|{request.cseq.seq}"
        first = hashlib.blake2b(
            f"{via}|{leg.proto}:{leg.port}".encode("utf-8", "surrogateescape"), digest_size=8
        )
        # Route too: a Route set that passes us twice is a spiral, not a loop
        # (section 16.6 step 8: all that affects routing).
        routes = headers.get_all("route")
        invariant = (
            f"{request.uri_text}|{headers.get('from')}|{headers.get('call-id')}|{request.cseq.seq}"
            f"|{'|'.join(routes)}"
        )
        loop = hashlib.blake2b(invariant.encode("utf-8", "surrogateescape"), digest_size=8)
        loop_part = loop.hexdigest()
        return f"{MAGIC_COOKIE}{first.hexdigest()}{loop_part}", loop_part

    async def _targets(self, request: Request) -> list[Target]:
        # The Dispatcher's routing: outgoing proxy, Route/URI via domain2proxy, RFC 3263.
        key = self._targets_key(request)
        targets = await self.dispatcher.targets_for(request, None)
        cache = self._targets_cache
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()
        cache[key] = (anyio.current_time() + TARGETS_LIFETIME, targets)
        return targets

    def _leg_for(self, target: Target, incoming: Leg) -> Leg | None:
        # Prefer the leg the request came in on; remember the choice per
        # destination (can_deliver_to parses addresses: not for every packet).
        key = (target.transport, target.host, incoming)
        cache = self._leg_cache
        legs = self.dispatcher.legs
        if cache[0] != legs:
            cache = self._leg_cache = (legs, {})
        found = cache[1].get(key)
        if found is not None:
            return found
        chosen: Leg | None = None
        if incoming.can_deliver_to(target.address, target.transport):
            chosen = incoming
        else:
            chosen = next(
                (leg for leg in legs if leg.can_deliver_to(target.address, target.transport)),
                None,
            )
        if chosen is not None and len(cache[1]) < 4096:
            cache[1][key] = chosen
        return chosen

    def _records(self, request: Request) -> bool:
        """Whether our Record-Route goes on ``request`` (section 16.6 step 4)."""
        if not self.record_route or request.method in ("REGISTER", "ACK", "CANCEL"):
            return False
        return request.to.tag is None

    def _stamp(
        self, request: Request, in_leg: Leg, out_leg: Leg, target: Target, branch: str, record: bool
    ) -> int:
        """Add our Record-Route(s), rewrite Contacts and add our Via; returns
        the number of Record-Route values added (for :meth:`_unstamp`)."""
        headers = request.headers
        added_rr = 0
        if record:
            # Section 16.6 step 4; the second one, for the leg facing the
            # callee, makes in-dialog requests cross back on the right leg.
            headers.prepend("Record-Route", _record_route(in_leg))
            added_rr = 1
            if out_leg is not in_leg:
                headers.prepend("Record-Route", _record_route(out_leg))
                added_rr = 2
        if self.rewrite_contact and out_leg is not in_leg and "contact" in headers:
            self._rewrite_contacts(request, out_leg)
        headers.prepend("Via", out_leg.via_text(branch, target.address))
        return added_rr

    @staticmethod
    def _unstamp(request: Request, added_rr: int) -> None:
        headers = request.headers
        headers.pop_first_value("via")
        for _ in range(added_rr):
            headers.pop_first_value("record-route")

    async def _forward(
        self,
        request: Request,
        in_leg: Leg,
        targets: list[Target] | None = None,
        record: bool | None = None,
        next_hop: URI | None = None,
    ) -> bool:
        if targets is None:
            try:
                # A strict router as next hop is reached by the Request-URI,
                # not by the first Route (section 16.6 step 7).
                routing = request if next_hop is None else Request(request.method, next_hop)
                targets = await self._targets(routing)
            except DeliveryError:
                targets = []
        headers = request.headers
        if record is None:
            record = self._records(request)
        for target in targets:
            out_leg = self._leg_for(target, in_leg)
            if out_leg is None:
                continue
            branch, loop_part = self._branch(request, out_leg)
            # Section 16.3 step 4: the request passed here before, unchanged: a loop.
            if any(loop_part in value for value in headers.get_all("via")):
                if request.method != "ACK":
                    await self._reply(request, 482, in_leg)
                return True
            added_rr = self._stamp(request, in_leg, out_leg, target, branch, record)
            try:
                await out_leg.send(bytes(request), target.address, tls_hostname=target.hostname)
            except TransportFailure:
                self._unstamp(request, added_rr)
                continue
            self._requests += 1
            return True
        if request.method == "ACK":
            self._dropped += 1
        else:
            await self._reply(request, 503, in_leg, reason="No route to destination")
        return True

    async def _response(self, response: Response, leg: Leg) -> None:
        # Section 16.7 step 3 / 16.11: remove our Via; a response whose top Via
        # is not ours, or that has no Via left, was not for us to forward.
        if not leg.remove_our_via(response) or "via" not in response.headers:
            self._dropped += 1
            return
        if self.rewrite_contact and "contact" in response.headers:
            via = response.top_via
            host = via.received or via.host
            out_leg = self._leg_for(Target(via.transport.lower(), host, via.default_port()), leg)
            if out_leg is not None and out_leg is not leg:
                self._rewrite_contacts(response, out_leg)
        await self._deliver_response(response)

    async def _deliver_response(self, response: Response) -> bool:
        try:
            await self.dispatcher.deliver(response, do_retransmits=False)
        except DeliveryError:
            self._dropped += 1
            return True
        self._responses += 1
        return True

    # ----- Contact rewriting ------------------------------------------------------------

    def _mac(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()[:16]

    def encode_contact(self, uri: URI, leg: Leg) -> URI:
        """A URI of ``leg`` that stands for ``uri`` (see ``rewrite_contact``)."""
        raw = str(uri).encode("utf-8", "surrogateescape")
        token = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        return URI.parse(f"{leg.contact_uri(f'{token}.{self._mac(raw)}')}")

    def _decode_contact(self, uri: URI) -> URI | None:
        user = uri.user
        if user is None or "." not in user or not self.is_ours(uri):
            return None
        token, _, mac = user.rpartition(".")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(raw)):
            return None
        try:
            return URI.parse(raw.decode("utf-8", "surrogateescape"))
        except ParseError:
            return None

    def _rewrite_contacts(self, message: Request | Response, leg: Leg) -> None:
        try:
            contacts = message.contacts
        except ParseError:
            return
        if not contacts:
            return
        message.headers.remove("contact")
        for contact in contacts:
            rewritten = dataclasses.replace(contact, uri=self.encode_contact(contact.uri, leg))
            message.headers.add("Contact", str(rewritten))

    def statistics(self) -> ProxyStatistics:
        """Counters of forwarded requests and responses, own answers, drops."""
        return ProxyStatistics(self._requests, self._responses, self._replies, self._dropped)


def _record_route(leg: Leg) -> str:
    return f"<{leg.contact_uri()};lr>"
