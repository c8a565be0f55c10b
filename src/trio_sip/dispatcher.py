"""The Dispatcher: moves SIP packets between legs and a receiver.

It is the counterpart of Net::SIP::Dispatcher, built for structured
concurrency on anyio:

- Entering it opens a task group with one receive task per leg, one
  queue-expiry task and a few handler tasks for an async receiver. Packets
  from one source always go to the same handler task, so they are handled
  in the order they arrived; packets from different sources run concurrently.
- Each delivery that retransmits runs in its own cancel scope, kept in the
  queue under its id, so :meth:`Dispatcher.cancel_delivery` is scope
  cancellation.
- Retransmission follows RFC 3261 section 17 exactly: times come from
  :mod:`trio_sip.transaction.timers` and are not rounded to a tick.
- Responses to incoming requests are cached by transaction, so that a
  retransmitted request is answered again without bothering the receiver.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import DeliveryError, DeliveryFailure, ParseError, ResolveError
from .message import (
    URI,
    Message,
    Params,
    Request,
    Response,
    make_ack,
    make_response,
    parse_message,
)
from .message.parse import DEFAULT_LIMITS, ParseLimits, parse_head
from .message.via import Via, common_via_host
from .resolver import DNSResolver, Resolver, Target, uri_transport
from .transaction.keys import ServerKey, client_key
from .transaction.timers import RetransmitKind, TimerConfig, retransmit_intervals
from .transport.leg import (
    Address,
    Leg,
    LegStatistics,
    TransportFailure,
    format_address,
    is_ip_literal,
    parse_address,
)

__all__ = [
    "Dispatcher",
    "DispatcherStatistics",
    "DeliveryCallback",
    "Receiver",
    "TimerHandle",
    "PATH_MTU_LIMIT",
]

log = logging.getLogger("trio_sip.dispatcher")

#: RFC 3261 section 18.1.1: a request over 1300 bytes (path MTU unknown) goes
#: over a congestion-controlled transport (TCP) when one is available.
PATH_MTU_LIMIT = 1300
#: How many stream-borne transactions remember their connection (RFC 3261 18.2.2).
STREAM_SOURCES = 65536

#: Called once per delivery: ``None`` on definite delivery, or the error.
DeliveryCallback = Callable[[DeliveryError | None], object]


class Receiver(Protocol):
    """What :meth:`Dispatcher.set_receiver` takes (or a plain callable)."""

    def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> Any:
        """Handle one incoming packet (may be a coroutine function)."""
        ...


@dataclass(frozen=True, slots=True)
class DispatcherStatistics:
    """A snapshot of what the Dispatcher has done."""

    packets_in: int
    packets_out: int
    retransmissions: int
    #: responses re-sent from the cache for retransmitted requests
    redeliveries: int
    #: retransmitted requests and ACKs absorbed without reaching the receiver
    absorbed: int
    #: packets dropped: unparsable, a response whose Via is not ours, queue full
    dropped: int
    deliveries_pending: int
    failures: Mapping[str, int]
    cache_size: int
    receiver_errors: int
    legs: Mapping[str, LegStatistics]


@dataclass(eq=False)
class TimerHandle:
    """A timer made by :meth:`Dispatcher.add_timer`; :meth:`cancel` stops it."""

    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def cancel(self) -> None:
        """Stop the timer (it does not fire again)."""
        self.scope.cancel()


@dataclass(eq=False)
class _Failover:
    """RFC 3263 section 4.3: a request that moves on to the next target when
    one fails (transport error, Timer B/F, 503)."""

    request: Request
    remaining: list[Target]
    keeps_via: bool
    retransmit: bool
    leg: Leg | None
    #: client transaction keys of every attempt; the one in flight is last
    keys: list[Hashable] = field(default_factory=list)
    #: the ACK sent for an abandoned INVITE attempt's 503, by its key, to
    #: answer that 503's retransmissions (RFC 3261 section 17.1.1.3)
    acks: dict[Hashable, tuple[Leg, Address, bytes]] = field(default_factory=dict)


@dataclass(eq=False)
class _Delivery:
    """One packet in the retransmission queue."""

    id: Hashable
    data: bytes
    leg: Leg
    dst: Address
    kind: RetransmitKind
    callback: DeliveryCallback | None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    #: a non-INVITE request that got a 1xx retransmits every T2 (17.1.2.2)
    proceeding: bool = False
    done: bool = False
    failover: _Failover | None = None
    #: set when this attempt failed and the next target takes over
    failing_over: bool = False


@dataclass(eq=False, slots=True)
class _CacheEntry:
    """The last response to a received request (None while none was sent)."""

    response: Response | None = None
    data: bytes = b""
    leg: Leg | None = None
    dst: Address | None = None
    #: when the entry is forgotten (on the clock of anyio.current_time)
    expires: float = 0.0


#: What the handler tasks get: a packet for an async receiver, or the awaitable a
#: sync receiver returned for it (the packet then only names it in logs).
_Inbound = tuple[Message, Leg, Address, Awaitable[object] | None]


def _cache_key(msg: Message) -> Hashable:
    """The response-cache key of a received request, computable from its response too.

    For RFC 3261 clients it is the server transaction key (section 17.2.3,
    ACK counted as INVITE). For RFC 2543 clients the transaction key needs
    the Request-URI, which a response lacks; Call-ID, From tag, CSeq and the
    top Via identify the request just as well for redelivery.
    """
    via = msg.top_via
    method = msg.method if isinstance(msg, Request) else msg.cseq.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch is not None and via.has_magic_cookie:
        return ServerKey(branch.lower(), via.host.lower(), via.default_port(), method)
    sent_by = (via.transport, via.host.lower(), via.default_port(), branch)
    return ("rfc2543", msg.call_id, msg.from_.tag, msg.cseq.seq, method, sent_by)


def _ack_key(msg: Message) -> Hashable:
    # The ACK for a 2xx is its own transaction (section 13.2.2.4) but shares
    # Call-ID and CSeq number with the INVITE: that is how it stops the 2xx.
    return ("2xx-ack", msg.call_id, msg.cseq.seq)


class Dispatcher:
    """Dispatch SIP packets between legs and a receiver (an endpoint, a proxy ...).

    ``legs`` are Leg objects, spec strings (``"udp:127.0.0.1:5060"``), dicts
    or bound sockets. ``outgoing_proxy`` (``"host:port"`` or a SIP URI) takes
    every request; ``domain2proxy`` maps SIP domains to proxies (exact domain,
    then parent domains, then ``"*"``). ``do_retransmits`` is the default of
    :meth:`deliver` (a stateless proxy turns it off). ``t1``, ``t2``, ``t4`` are
    RFC 3261's timer bases. ``response_cache`` keeps the last response to each
    received request for redelivery (a stateless proxy turns it off).
    """

    def __init__(
        self,
        legs: Iterable[Leg | str | Mapping[str, Any]] = (),
        *,
        outgoing_proxy: str | None = None,
        do_retransmits: bool = True,
        domain2proxy: Mapping[str, str] | None = None,
        resolver: Resolver | None = None,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        response_cache: bool = True,
        limits: ParseLimits = DEFAULT_LIMITS,
        handler_tasks: int = 8,
        inbound_queue: int = 10000,
    ) -> None:
        self._initial_legs = [Leg.create(spec) for spec in legs]
        self.outgoing_proxy = outgoing_proxy
        self.do_retransmits = do_retransmits
        self.domain2proxy = {k.lower(): v for k, v in (domain2proxy or {}).items()}
        self.resolver: Resolver = resolver if resolver is not None else DNSResolver()
        self.timers = TimerConfig(t1=t1, t2=t2, t4=t4)
        self.response_cache = response_cache
        self.limits = limits
        self._handler_tasks = handler_tasks
        self._inbound_queue = inbound_queue
        self._legs: list[Leg] = []
        self._leg_scopes: dict[Leg, anyio.CancelScope] = {}
        self._receiver: Callable[..., Any] | None = None
        self._receiver_is_async = False
        self._queue: dict[Hashable, _Delivery] = {}
        self._cache: dict[Hashable, _CacheEntry] = {}
        # Where requests that came over a stream came from (leg, peer), by
        # transaction, newest last; bounded, oldest dropped first.
        self._stream_sources: dict[Hashable, tuple[Leg, Address]] = {}
        self._expiry: deque[tuple[float, Hashable]] = deque()
        self._expiry_wakeup = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._inbound: list[MemoryObjectSendStream[_Inbound]] = []
        # Per handler queue: packets queued or being handled there. While a
        # queue has any, its sources' next packets queue behind them instead
        # of running inline, so that no packet overtakes an earlier one of
        # its source.
        self._backlog: list[int] = []
        self._packets_in = 0
        self._packets_out = 0
        self._retransmissions = 0
        self._redeliveries = 0
        self._absorbed = 0
        self._dropped = 0
        self._receiver_errors = 0
        self._failures: dict[str, int] = {}
        #: transaction key of a failover attempt -> its delivery's id
        self._failover_keys: dict[Hashable, Hashable] = {}

    # ----- life cycle -----------------------------------------------------------------

    async def __aenter__(self) -> Dispatcher:
        if self._exit_stack is not None:
            # Entered twice (say, by hand and by a UserAgent given it): the
            # second exit would find nothing to close.
            raise RuntimeError("this Dispatcher is already running; enter it only once")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            tg = await stack.enter_async_context(anyio.create_task_group())
            self._tg = tg
            # Closing the legs happens after the task group is done (stack order).
            stack.push_async_callback(self._close_legs)
            per_task = max(1, self._inbound_queue // max(1, self._handler_tasks))
            for i in range(max(1, self._handler_tasks)):
                send, receive = anyio.create_memory_object_stream[_Inbound](per_task)
                self._inbound.append(send)
                self._backlog.append(0)
                stack.push_async_callback(send.aclose)
                tg.start_soon(self._handler_task, receive, i, name=f"trio-sip handler {i}")
            for leg in self._initial_legs:
                await self.add_leg(leg)
            tg.start_soon(self._expiry_task, name="trio-sip queue expiry")
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        stack, self._exit_stack = self._exit_stack, None
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._tg = None
        assert stack is not None
        return await stack.__aexit__(*exc_info)

    def _task_group(self) -> anyio.abc.TaskGroup:
        if self._tg is None:
            raise RuntimeError("the Dispatcher is not running: use 'async with Dispatcher(...)'")
        return self._tg

    async def _close_legs(self) -> None:
        with anyio.CancelScope(shield=True):
            for leg in self._legs:
                await leg.aclose()
            self._legs.clear()

    # ----- receiver and legs ----------------------------------------------------------

    def set_receiver(self, receiver: Receiver | Callable[..., Any] | None) -> None:
        """Set who gets incoming packets: an object with ``receive(packet, leg,
        from_addr)`` or a callable with that signature, sync or async."""
        if receiver is None:
            self._receiver = None
            return
        fn = getattr(receiver, "receive", receiver)
        if not callable(fn):
            raise TypeError("receiver must be callable or have a receive() method")
        self._receiver = fn
        self._receiver_is_async = inspect.iscoroutinefunction(fn)

    async def add_leg(self, leg: Leg | str | Mapping[str, Any]) -> Leg:
        """Bind ``leg`` and start its receive task; returns the Leg."""
        tg = self._task_group()
        leg = Leg.create(leg)
        await leg.bind()
        scope = anyio.CancelScope()
        self._legs.append(leg)
        self._leg_scopes[leg] = scope

        async def run() -> None:
            with scope:
                # A leg removed before this task ran must not be served.
                await anyio.lowlevel.checkpoint()
                await leg.serve(self._on_packet)

        tg.start_soon(run, name=f"trio-sip {leg!r}")
        return leg

    async def remove_leg(self, leg: Leg) -> None:
        """Stop ``leg``'s task and close its sockets."""
        scope = self._leg_scopes.pop(leg, None)
        if scope is not None:
            scope.cancel()
        if leg in self._legs:
            self._legs.remove(leg)
        await leg.aclose()

    def get_legs(
        self,
        *,
        addr: str | None = None,
        port: int | None = None,
        proto: str | None = None,
        sock: Any = None,
        sub: Callable[[Leg], bool] | None = None,
    ) -> list[Leg]:
        """The legs matching every given criterion."""
        out = []
        for leg in self._legs:
            if addr is not None and leg.host != addr:
                continue
            if port is not None and leg.port != port:
                continue
            if proto is not None and leg.proto != proto.lower():
                continue
            if sock is not None and getattr(leg, "_sock", None) is not sock:
                continue
            if sub is not None and not sub(leg):
                continue
            out.append(leg)
        return out

    @property
    def legs(self) -> tuple[Leg, ...]:
        """Every leg, in the order they were added."""
        return tuple(self._legs)

    # ----- timers ---------------------------------------------------------------------

    def add_timer(
        self,
        when: float,
        callback: Callable[[], object],
        repeat: float | None = None,
    ) -> TimerHandle:
        """Call ``callback`` at ``when`` (epoch seconds, if larger than 10**9) or
        after ``when`` seconds (0: now), then every ``repeat`` seconds if given.
        The callback may be a coroutine function."""
        delay = when - time.time() if when > 1e9 else when
        handle = TimerHandle()
        self._task_group().start_soon(self._run_timer, handle, max(0.0, delay), callback, repeat)
        return handle

    async def _run_timer(
        self,
        handle: TimerHandle,
        delay: float,
        callback: Callable[[], object],
        repeat: float | None,
    ) -> None:
        with handle.scope:
            deadline = anyio.current_time() + delay
            while True:
                await anyio.sleep_until(deadline)
                try:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("timer callback %r failed", callback)
                if repeat is None:
                    return
                deadline += repeat

    # ----- receiving ------------------------------------------------------------------

    def _on_packet(self, packet: bytes | Message, leg: Leg, from_addr: Address) -> None:
        # Runs in the leg's receive loop: it must never wait.
        self._packets_in += 1
        if isinstance(packet, bytes):
            try:
                msg: Message = parse_message(packet, limits=self.limits, datagram=True)
            except ParseError as exc:
                self._reject(packet, exc, leg, from_addr)
                return
        else:
            msg = packet
        try:
            if isinstance(msg, Request):
                if not self._incoming_request(msg, leg, from_addr):
                    return
            elif isinstance(msg, Response) and not self._incoming_response(msg, leg, from_addr):
                return
        except ParseError as exc:
            self._reject(msg, exc, leg, from_addr)
            return
        self._hand_up(msg, leg, from_addr)

    def _incoming_request(self, request: Request, leg: Leg, from_addr: Address) -> bool:
        """Mark the top Via and answer retransmissions; False when absorbed."""
        top = request.headers.first_value("via")
        if top is None or common_via_host(top) != from_addr[0] or "rport" in top.lower():
            self._stamp_received(request, from_addr)
        if leg.reliable and request.method != "ACK":
            sources = self._stream_sources
            if len(sources) >= STREAM_SOURCES:
                del sources[next(iter(sources))]
            sources[_cache_key(request)] = (leg, from_addr)
        if not self.response_cache:
            return True
        key = _cache_key(request)
        entry = self._cache.get(key)
        if request.method == "ACK":
            if entry is not None and entry.response is not None and entry.response.status >= 300:
                # ACK for a non-2xx final response: ends Timer G, never reaches the TU.
                self._finish_delivery(key)
                self._absorbed += 1
                return False
            self._finish_delivery(_ack_key(request))
            return True
        if entry is not None:
            self._absorbed += 1
            if entry.response is not None and entry.leg is not None and entry.dst is not None:
                self._redeliveries += 1
                self._task_group().start_soon(self._send_quietly, entry.leg, entry.data, entry.dst)
            return False
        self._remember(key, _CacheEntry())
        return True

    def _stamp_received(self, request: Request, from_addr: Address) -> None:
        # RFC 3261 section 18.2.1 and RFC 3581: note where the request really
        # came from, so that the response finds its way back through a NAT.
        via = request.top_via
        rport = via.rport
        if via.host != from_addr[0] or rport is not None:
            params: dict[str, str | None] = {"received": from_addr[0]}
            if rport is not None:
                params["rport"] = str(from_addr[1])
            request.replace_top_via(via.with_params(**params))

    def _incoming_response(self, response: Response, leg: Leg, from_addr: Address) -> bool:
        """Check the Via and stop the request's retransmission; False when dropped."""
        if not leg.check_response(response):
            # RFC 3261 section 18.1.2: a response whose top Via we did not
            # write is silently discarded.
            self._dropped += 1
            log.debug("dropping response with a foreign Via from %s", format_address(from_addr))
            return False
        if not self._queue:
            # Nothing in flight (always so on a stateless proxy): no key to compute.
            return True
        key = client_key(response)
        delivery = self._queue.get(key)
        if delivery is None and key in self._failover_keys:
            delivery = self._queue.get(self._failover_keys[key])
        if (
            delivery is not None
            and delivery.failover is not None
            and not self._current_attempt(delivery, key, response)
        ):
            # A 2xx to an abandoned attempt made a dialog the TU must end.
            return 200 <= response.status < 300
        if delivery is not None:
            if response.status == 503 and delivery.failover and delivery.failover.remaining:
                self._fail_over_on_503(delivery, key, response)
                return False
            if response.status >= 200 or delivery.kind is RetransmitKind.INVITE_REQUEST:
                self._finish_delivery(delivery.id)
            else:
                delivery.proceeding = True
        return True

    def _hand_up(self, msg: Message, leg: Leg, from_addr: Address) -> None:
        receiver = self._receiver
        if receiver is None:
            self._dropped += 1
            return
        # Same source, same queue and task: the order of a peer's packets is kept.
        index = hash(from_addr) % len(self._inbound)
        pending: Awaitable[object] | None = None
        if not self._receiver_is_async and not self._backlog[index]:
            # A sync receiver runs inline, in the leg's loop: no task switch per
            # packet. When it cannot finish without waiting (DNS, a stream, a
            # full socket buffer) it returns an awaitable, which the source's
            # handler task awaits. (With packets of its queue still waiting,
            # it runs in the handler task after them instead.)
            try:
                result = receiver(msg, leg, from_addr)
            except Exception:
                self._receiver_failed(msg)
                return
            if result is None or not inspect.isawaitable(result):
                return
            pending = result
        try:
            self._inbound[index].send_nowait((msg, leg, from_addr, pending))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self._dropped += 1
            if inspect.iscoroutine(pending):
                pending.close()  # never awaited: say so to nobody
            log.warning("inbound queue full: dropping %s", msg.summary())
            return
        self._backlog[index] += 1

    async def _handler_task(self, receive: MemoryObjectReceiveStream[_Inbound], index: int) -> None:
        backlog = self._backlog
        async with receive:
            try:
                async for msg, leg, from_addr, pending in receive:
                    try:
                        if pending is None:
                            receiver = self._receiver
                            if receiver is None:
                                continue
                            # An async receiver, or a sync one whose packet
                            # queued behind earlier ones of its source.
                            pending = receiver(msg, leg, from_addr)
                        if pending is not None and inspect.isawaitable(pending):
                            await pending
                    except Exception:
                        self._receiver_failed(msg)
                    finally:
                        backlog[index] -= 1
            finally:
                # At shutdown, what is still queued never runs: close those
                # coroutines so that none is reported as never awaited.
                while True:
                    try:
                        left = receive.receive_nowait()[3]
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                    if inspect.iscoroutine(left):
                        left.close()

    def _receiver_failed(self, msg: Message) -> None:
        self._receiver_errors += 1
        log.exception("receiver failed on %s", msg.summary())

    def _reject(self, packet: bytes | Message, exc: ParseError, leg: Leg, addr: Address) -> None:
        """Drop a bad packet; answer a request that parsed far enough (400 ...)."""
        self._dropped += 1
        log.info("dropping bad packet from %s: %s", format_address(addr), exc.reason)
        request: Message | None = packet if isinstance(packet, Message) else None
        if request is None:
            assert isinstance(packet, bytes)
            end = packet.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                request = parse_head(packet[:end].decode("utf-8", "surrogateescape"), self.limits)
            except ParseError:
                return
        if not isinstance(request, Request) or request.method == "ACK":
            return
        try:
            request.top_via  # noqa: B018 - the response must echo these, well-formed
            request.cseq  # noqa: B018
            request.call_id  # noqa: B018
            request.from_  # noqa: B018
            request.to  # noqa: B018
        except ParseError:
            return
        reason = " ".join(exc.reason.split())[:120]
        response = make_response(request, exc.status_hint, reason)
        # Straight back to the source: what received/rport would say (RFC 3581).
        self._task_group().start_soon(self._send_quietly, leg, bytes(response), addr)

    async def _send_quietly(self, leg: Leg, data: bytes, dst: Address) -> None:
        try:
            await leg.send(data, dst)
            self._packets_out += 1
        except TransportFailure as exc:
            self._count_failure(exc.reason)
            log.info("send to %s failed: %s", format_address(dst), exc)

    # ----- the response cache ---------------------------------------------------------

    def _remember(self, key: Hashable, entry: _CacheEntry) -> None:
        old = self._cache.get(key)
        response = entry.response
        if old is None or (
            response is not None
            and response.status >= 200
            and (old.response is None or old.response.status < 200)
        ):
            # Keep a received transaction for 64*T1 (Timers H, J): long enough
            # for every retransmission a client can send. Timers H and J run
            # from the final response, which may come long after the request
            # (an INVITE that rang): the ACKs that end Timer G come until then.
            entry.expires = anyio.current_time() + 64 * self.timers.t1
            self._expiry.append((entry.expires, key))
            if len(self._expiry) == 1:
                self._expiry_wakeup.set()
        else:
            entry.expires = old.expires
        self._cache[key] = entry

    def queue_expire(self, now: float | None = None) -> None:
        """Drop response-cache entries that have lived their 64*T1, and queue
        entries whose delivery task has ended."""
        if now is None:
            now = anyio.current_time()
        expiry = self._expiry
        cache = self._cache
        while expiry and expiry[0][0] <= now:
            _, key = expiry.popleft()
            entry = cache.get(key)
            # An entry given a later expiry by its final response stays.
            if entry is not None and entry.expires <= now:
                del cache[key]
        for key in [k for k, d in self._queue.items() if d.done]:
            del self._queue[key]

    async def _expiry_task(self) -> None:
        while True:
            if not self._expiry:
                self._expiry_wakeup = anyio.Event()
                await self._expiry_wakeup.wait()
                continue
            await anyio.sleep_until(self._expiry[0][0])
            self.queue_expire()

    # ----- delivering -----------------------------------------------------------------

    async def deliver(
        self,
        packet: Request | Response,
        *,
        id: Hashable | None = None,
        callback: DeliveryCallback | None = None,
        leg: Leg | None = None,
        dst_addr: Address | str | None = None,
        do_retransmits: bool | None = None,
        tls_hostname: str | None = None,
    ) -> Hashable:
        """Send ``packet`` and, over UDP, retransmit it as RFC 3261 says.

        The destination is, in order: the given ``leg`` and ``dst_addr`` (with
        ``tls_hostname``, the name a TLS peer's certificate must carry, else
        its address: give the :class:`Target`'s ``hostname`` when the
        address came from :meth:`targets_for`); the
        outgoing proxy; the first Route or the Request-URI through
        ``domain2proxy``; the resolver. A response goes where its top Via says
        (RFC 3261 section 18.2.2, RFC 3581). When a target fails at transport
        level the next one is tried.

        Returns the delivery id (``id``, else the transaction key) for
        :meth:`cancel_delivery`. ``callback`` is called once: with ``None`` on
        definite delivery (sent over a reliable transport, or answered), or
        with the :class:`DeliveryError`. Without a callback an immediate
        failure raises :class:`DeliveryError`.
        """
        await anyio.lowlevel.checkpoint()
        retransmit = self.do_retransmits if do_retransmits is None else do_retransmits
        dst = parse_address(dst_addr) if isinstance(dst_addr, str) else dst_addr
        try:
            if isinstance(packet, Request):
                return await self._deliver_request(
                    packet, id, callback, leg, dst, retransmit, tls_hostname
                )
            return await self._deliver_response(packet, id, callback, leg, dst, retransmit)
        except DeliveryError as exc:
            self._count_failure(exc.reason)
            if callback is None:
                raise
            callback(exc)
            return id if id is not None else ("failed", packet.summary())

    async def _deliver_request(
        self,
        request: Request,
        id: Hashable | None,
        callback: DeliveryCallback | None,
        leg: Leg | None,
        dst: Address | None,
        retransmit: bool,
        tls_hostname: str | None = None,
    ) -> Hashable:
        if leg is not None and dst is not None:
            targets = [Target(leg.proto, dst[0], dst[1], tls_hostname)]
        else:
            targets = await self.targets_for(request, dst)
        return await self._try_targets(request, targets, id, callback, leg, retransmit, None)

    async def _try_targets(
        self,
        request: Request,
        targets: list[Target],
        id: Hashable | None,
        callback: DeliveryCallback | None,
        leg: Leg | None,
        retransmit: bool,
        failover: _Failover | None,
    ) -> Hashable:
        """Send ``request`` to the first target that takes it; the ones after
        it stay for failover (RFC 3263 section 4.3)."""
        last_error: DeliveryError | None = None
        keeps_via = failover.keeps_via if failover is not None else self._has_our_via(request)
        for index, target in enumerate(targets):
            out_leg = leg if leg is not None else self.find_leg(target)
            if out_leg is None:
                last_error = DeliveryError(
                    DeliveryFailure.NO_ROUTE, f"no {target.transport} leg for {target.host}"
                )
                continue
            if not keeps_via:
                via_value = out_leg.add_via(request, target.address)
            data = bytes(request)
            if len(data) > PATH_MTU_LIMIT and not out_leg.reliable and not keeps_via:
                tcp = self.find_leg(Target("tcp", target.host, target.port))
                if tcp is not None:
                    request.headers.pop_first_value("via")
                    tcp.add_via(request, target.address, branch=via_value.branch)
                    try:
                        await self._send(tcp, bytes(request), target)
                    except DeliveryError as exc:
                        # Section 18.1.1: when TCP fails, fall back to UDP.
                        log.info("large request over tcp failed (%s): trying udp", exc)
                        request.headers.pop_first_value("via")
                        out_leg.add_via(request, target.address, branch=via_value.branch)
                    else:
                        if callback is not None:
                            callback(None)
                        return id if id is not None else client_key(request)
            try:
                await self._send(out_leg, data, target)
            except DeliveryError as exc:
                # RFC 3263 section 4.3: a transport failure moves on to the
                # next target, with a new transaction (a fresh branch).
                last_error = exc
                if not keeps_via:
                    request.headers.pop_first_value("via")
                continue
            delivery_id = id if id is not None else client_key(request)
            remaining = targets[index + 1 :]
            # ACK and CANCEL follow the INVITE's hop; they never fail over.
            if (
                failover is None
                and remaining
                and retransmit
                and request.method not in ("ACK", "CANCEL")
            ):
                failover = _Failover(request, remaining, keeps_via, retransmit, leg)
            if failover is not None:
                failover.remaining = remaining
                key = client_key(request)
                failover.keys.append(key)
                self._failover_keys[key] = delivery_id
            reliable_done = out_leg.reliable and not (failover and failover.remaining)
            if request.method == "ACK" or not retransmit or reliable_done:
                if failover is not None:
                    self._forget_failover(failover)
                if out_leg.reliable and callback is not None:
                    callback(None)
                return delivery_id
            kind = (
                RetransmitKind.INVITE_REQUEST
                if request.method == "INVITE"
                else RetransmitKind.NON_INVITE_REQUEST
            )
            self._queue_retransmission(
                _Delivery(
                    delivery_id, data, out_leg, target.address, kind, callback, failover=failover
                )
            )
            return delivery_id
        raise last_error or DeliveryError(DeliveryFailure.NO_ROUTE, "no target")

    def _current_attempt(self, d: _Delivery, key: Hashable, response: Response) -> bool:
        """Whether ``response`` (of a failover delivery) answers the attempt in
        flight. A late answer to an abandoned attempt does not touch the
        delivery; a 503 we ACKed is ACKed again."""
        assert d.failover is not None
        if d.failover.keys[-1] == key:
            return True
        ack = d.failover.acks.get(key)
        if ack is not None and response.status >= 300:
            leg, dst, data = ack
            self._task_group().start_soon(self._send_quietly, leg, data, dst)
        if not 200 <= response.status < 300:
            self._absorbed += 1
        return False

    def _fail_over_on_503(self, d: _Delivery, key: Hashable, response: Response) -> None:
        """RFC 3263 section 4.3: a 503 sends the request to the next target."""
        assert d.failover is not None
        d.failing_over = True
        d.scope.cancel()
        ack: bytes | None = None
        if d.kind is RetransmitKind.INVITE_REQUEST:
            # The INVITE's client transaction ACKs a non-2xx itself (17.1.1.3).
            ack = bytes(make_ack(d.failover.request, response))
            d.failover.acks[key] = (d.leg, d.dst, ack)
        self._task_group().start_soon(self._fail_over, d, "503 Service Unavailable", ack)

    async def _fail_over(
        self,
        d: _Delivery,
        why: str,
        ack: bytes | None = None,
        error: DeliveryError | None = None,
    ) -> None:
        """Deliver ``d``'s request to its remaining targets as a new transaction.

        ``error`` is why the last attempt failed; it is what the callback gets
        when no remaining target has even a leg (a "no route" says less).
        """
        failover = d.failover
        assert failover is not None
        log.info("delivery %r to %s failed (%s): next target", d.id, format_address(d.dst), why)
        if ack is not None:
            await self._send_quietly(d.leg, ack, d.dst)
        if not failover.keeps_via:
            failover.request.headers.pop_first_value("via")
        try:
            await self._try_targets(
                failover.request,
                failover.remaining,
                d.id,
                d.callback,
                failover.leg,
                failover.retransmit,
                failover,
            )
        except DeliveryError as exc:
            self._forget_failover(failover)
            if exc.reason is DeliveryFailure.NO_ROUTE and error is not None:
                exc = error
            self._count_failure(exc.reason)
            log.info("delivery %r failed on every target: %s", d.id, exc)
            if d.callback is not None:
                self._call_back(d.callback, exc)

    def _forget_failover(self, failover: _Failover) -> None:
        for key in failover.keys:
            self._failover_keys.pop(key, None)

    def _has_our_via(self, request: Request) -> bool:
        # ACK for a non-2xx and CANCEL copy the INVITE's Via, which is ours:
        # they must leave with it unchanged (RFC 3261 sections 9.1, 17.1.1.3).
        if "via" not in request.headers or request.method not in ("ACK", "CANCEL"):
            return False
        via = request.top_via
        return any(leg.is_our_via(via) for leg in self._legs)

    async def _deliver_response(
        self,
        response: Response,
        id: Hashable | None,
        callback: DeliveryCallback | None,
        leg: Leg | None,
        dst: Address | None,
        retransmit: bool,
    ) -> Hashable:
        target: Target
        if dst is None and response.top_via.reliable:
            # RFC 3261 section 18.2.2: over a stream, the response goes back on
            # the connection the request came on while it is open, whatever
            # the Via says (a client without rport listens elsewhere).
            source = self._stream_sources.get(_cache_key(response))
            if source is not None and source[0].connection_to(source[1]):
                leg, dst = source
        if dst is not None:
            proto = leg.proto if leg is not None else response.top_via.transport.lower()
            target = Target(proto, dst[0], dst[1])
        else:
            target = await self.response_target(response)
        out_leg = leg
        if out_leg is None or (dst is None and out_leg.proto != target.transport):
            out_leg = self.find_leg(target)
        if out_leg is None:
            raise DeliveryError(
                DeliveryFailure.NO_ROUTE, f"no {target.transport} leg for {target.host}"
            )
        data = bytes(response)
        key = _cache_key(response)
        cached = self.response_cache and response.cseq.method != "ACK"
        if cached:
            self._remember(key, _CacheEntry(response, data, out_leg, target.address))
        try:
            await self._send(out_leg, data, target)
        except DeliveryError as exc:
            if dst is not None:
                raise
            # RFC 3261 section 18.2.2, RFC 3263 section 5: where the Via
            # says failed (a refused connection ...): its sent-by, resolved.
            out_leg, target = await self._send_to_sent_by(response, data, target, exc)
            if cached:
                self._remember(key, _CacheEntry(response, data, out_leg, target.address))
        delivery_id = id if id is not None else key
        is_invite_final = response.cseq.method == "INVITE" and response.status >= 200
        if not is_invite_final or not retransmit or out_leg.reliable:
            if out_leg.reliable and callback is not None:
                callback(None)
            return delivery_id
        if response.status >= 300:
            kind = RetransmitKind.INVITE_FINAL_RESPONSE
        else:
            kind = RetransmitKind.INVITE_2XX_RESPONSE
            delivery_id = id if id is not None else _ack_key(response)
        self._queue_retransmission(
            _Delivery(delivery_id, data, out_leg, target.address, kind, callback)
        )
        return delivery_id

    async def response_target(self, response: Response) -> Target:
        """Where a response goes: RFC 3261 section 18.2.2 with RFC 3581.

        Over UDP: the top Via's maddr, else its received/rport, else its
        sent-by; over a stream whose connection is gone: received, else the
        sent-by host, on the sent-by port. A sent-by name is resolved as RFC
        3263 section 5 says (SRV when it has no port).
        """
        via = response.top_via
        proto, host, port = _via_destination(via)
        if is_ip_literal(host):
            # A new TLS connection to ``received`` checks the sent-by name,
            # when it is one, in the client's certificate (RFC 5922).
            name = via.host if host != via.host and not is_ip_literal(via.host) else None
            return Target(proto, host, port, name)
        if host != via.host:  # a maddr name: its address, on the sent-by port
            targets = await self.resolver.resolve(URI("sip", host, port=port))
            return Target(proto, targets[0].host, port, host)
        return (await self._sent_by_targets(via))[0]

    async def _sent_by_targets(self, via: Via) -> list[Target]:
        """RFC 3263 section 5: the places a Via's sent-by names, best first.

        A name with a port is looked up as A/AAAA; a name without one as SRV
        (``_sips._tcp`` for TLS, ``_sip._udp`` or ``_sip._tcp`` otherwise).
        """
        proto = via.transport.lower()
        if is_ip_literal(via.host):
            return [Target(proto, via.host, via.default_port())]
        scheme = "sips" if proto == "tls" else "sip"
        params = Params((("transport", proto),))
        uri = URI(scheme, via.host, port=via.port, params=params)
        try:
            return await self.resolver.resolve(uri, transports=(proto,))
        except ResolveError as exc:
            raise DeliveryError(DeliveryFailure.NO_ROUTE, str(exc)) from exc

    async def _send_to_sent_by(
        self, response: Response, data: bytes, failed: Target, error: DeliveryError
    ) -> tuple[Leg, Target]:
        """Send ``data`` to the first of the sent-by's places that takes it
        (RFC 3263 section 5: on failure, the next); raise the last error."""
        try:
            targets = await self._sent_by_targets(response.top_via)
        except DeliveryError:
            raise error from None
        for target in targets:
            if target.address == failed.address:
                continue
            leg = self.find_leg(target)
            if leg is None:
                continue
            try:
                await self._send(leg, data, target)
            except DeliveryError as exc:
                error = exc
                continue
            return leg, target
        raise error

    @staticmethod
    def response_target_nowait(response: Response) -> Target | None:
        """:meth:`response_target` when no name needs resolving, else None."""
        proto, host, port = _via_destination(response.top_via)
        return Target(proto, host, port) if is_ip_literal(host) else None

    def respond_nowait(self, response: Response, leg: Leg | None = None) -> bool:
        """Send ``response`` at once if nothing needs waiting; False (nothing sent) if it does.

        The per-packet path of an element whose own transactions retransmit
        (an Endpoint's answers, a proxy's forwarded responses): a datagram
        leg, a top Via whose destination (:meth:`response_target`) is an IP
        address, a socket buffer with room. Then the response is sent now,
        in the caller's task, and kept in the response cache as
        :meth:`deliver` would; it is never retransmitted. Otherwise, a
        stream, a name to resolve, a full buffer, no leg, it returns False
        and :meth:`deliver` does the work. ``leg`` is the leg the request
        came on, used when it speaks the Via's transport. Raises
        :class:`DeliveryError` when the send fails.
        """
        via = response.top_via
        if via.reliable:
            return False  # 18.2.2: the connection the request came on, if open
        proto, host, port = _via_destination(via)
        if not is_ip_literal(host):
            return False
        target = Target(proto, host, port)
        out_leg = leg if leg is not None and leg.proto == target.transport else None
        if out_leg is None:
            out_leg = self.find_leg(target)
            if out_leg is None:
                return False
        data = bytes(response)
        try:
            if not out_leg.send_nowait(data, target.address):
                return False
        except TransportFailure as exc:
            self._count_failure(exc.reason)
            raise DeliveryError(exc.reason, exc.detail) from exc
        self._packets_out += 1
        if self.response_cache and response.cseq.method != "ACK":
            self._remember(
                _cache_key(response), _CacheEntry(response, data, out_leg, target.address)
            )
        return True

    async def targets_for(self, request: Request, dst: Address | None = None) -> list[Target]:
        """Where ``request`` would go, best first, without sending it.

        The order of :meth:`deliver`: ``dst`` when given, the outgoing proxy,
        the first Route or the Request-URI through ``domain2proxy``, then the
        resolver (restricted to the transports this Dispatcher has legs for).
        Raises DeliveryError (no route) when resolution fails. For elements
        that send the request themselves (a proxy choosing its branch, an
        endpoint whose transactions retransmit).
        """
        if dst is not None:
            return [Target(uri_transport(request.uri), dst[0], dst[1])]
        if self.outgoing_proxy is not None:
            return await self._resolve_proxy(self.outgoing_proxy, request)
        routes = request.routes
        uri = routes[0].uri if routes else request.uri
        if request.uri.is_secure and uri.scheme == "sip":
            # RFC 3261 section 8.1.2: a SIPS Request-URI makes the next hop a
            # SIPS URI for RFC 3263, whatever the Route says: TLS on every hop.
            uri = uri.replace(scheme="sips")
        if self.domain2proxy:
            proxy = self._proxy_for_domain(uri.host)
            if proxy is not None:
                return await self._resolve_proxy(proxy, request)
        try:
            return await self.resolver.resolve(uri, transports=self._transports())
        except ResolveError as exc:
            raise DeliveryError(DeliveryFailure.NO_ROUTE, str(exc)) from exc

    def _transports(self) -> set[str]:
        """The transports we have legs for: RFC 3263 section 4.1 picks among them."""
        return {leg.proto for leg in self._legs}

    def _proxy_for_domain(self, host: str) -> str | None:
        domain = host.lower().rstrip(".")
        while True:
            proxy = self.domain2proxy.get(domain)
            if proxy is not None:
                return proxy
            if "." not in domain:
                return self.domain2proxy.get("*")
            domain = domain.split(".", 1)[1]

    async def _resolve_proxy(self, proxy: str, request: Request) -> list[Target]:
        secure = request.uri.is_secure
        if ":" in proxy and proxy.split(":", 1)[0].lower() in ("sip", "sips"):
            uri = URI.parse(proxy)
            if secure and uri.scheme == "sip":
                uri = uri.replace(scheme="sips")  # section 8.1.2, as in targets_for
        else:
            # No port: RFC 3263 may find one (SRV); 0 is never a SIP port.
            host, port = parse_address(proxy, default_port=0)
            params = request.uri.params.without("maddr")
            uri = URI("sips" if secure else "sip", host, port=port or None, params=params)
        try:
            return await self.resolver.resolve(uri, transports=self._transports())
        except ResolveError as exc:
            raise DeliveryError(DeliveryFailure.NO_ROUTE, str(exc)) from exc

    def find_leg(self, target: Target) -> Leg | None:
        """The first leg that can reach ``target`` (protocol, family, scope)."""
        for leg in self._legs:
            if leg.can_deliver_to(target.address, target.transport):
                return leg
        return None

    async def _send(self, leg: Leg, data: bytes, target: Target) -> None:
        try:
            await leg.send(data, target.address, tls_hostname=target.hostname)
        except TransportFailure as exc:
            raise DeliveryError(exc.reason, exc.detail) from exc
        self._packets_out += 1

    # ----- retransmission -------------------------------------------------------------

    def _queue_retransmission(self, delivery: _Delivery) -> None:
        old = self._queue.get(delivery.id)
        if old is not None:
            old.scope.cancel()
        self._queue[delivery.id] = delivery
        self._task_group().start_soon(self._retransmit, delivery, anyio.current_time())

    async def _retransmit(self, d: _Delivery, start: float) -> None:
        config = self.timers
        deadline = start + config.duration(d.kind.timeout_timer)
        intervals = retransmit_intervals(d.kind, config)
        # A reliable transport does not retransmit (17.1.1.2); it waits for
        # Timer B/F only when a failover target is left.
        next_send = deadline if d.leg.reliable else start + next(intervals)
        error: DeliveryError | None = None
        with d.scope:
            try:
                while True:
                    if next_send >= deadline:
                        await anyio.sleep_until(deadline)
                        error = DeliveryError(DeliveryFailure.TIMEOUT, d.kind.value)
                        break
                    await anyio.sleep_until(next_send)
                    try:
                        await d.leg.send(d.data, d.dst)
                    except TransportFailure as exc:
                        error = DeliveryError(exc.reason, exc.detail)
                        break
                    self._retransmissions += 1
                    self._packets_out += 1
                    # Anchored to the schedule, so delays do not accumulate.
                    next_send += config.t2 if d.proceeding else next(intervals)
            finally:
                if self._queue.get(d.id) is d:
                    del self._queue[d.id]
                d.done = True
                if error is not None and d.failover is not None and d.failover.remaining:
                    d.failing_over = True
                if d.failover is not None and not d.failing_over:
                    self._forget_failover(d.failover)
        if error is not None and self._tg is None:
            # The Dispatcher is being left: its owner ended this delivery.
            # A send that was under way as the task group was cancelled (a
            # resumed task runs on to its next checkpoint on asyncio) may
            # find its leg closed already; that is no failure to report.
            return
        if error is not None and d.failing_over:
            # RFC 3263 section 4.3: Timer B/F or a transport error: next target.
            self._task_group().start_soon(self._fail_over, d, str(error), None, error)
            return
        if error is not None:
            self._count_failure(error.reason)
            log.info("delivery %r failed: %s", d.id, error)
            if d.callback is not None:
                self._call_back(d.callback, error)

    def _finish_delivery(self, delivery_id: Hashable) -> None:
        """A response or ACK arrived: stop retransmitting, report delivery."""
        d = self._queue.pop(delivery_id, None)
        if d is None:
            return
        d.scope.cancel()
        d.done = True
        if d.callback is not None:
            self._call_back(d.callback, None)

    def _call_back(self, callback: DeliveryCallback, error: DeliveryError | None) -> None:
        try:
            result = callback(error)
            if inspect.isawaitable(result):
                self._task_group().start_soon(_await, result)
        except Exception:
            log.exception("delivery callback %r failed", callback)

    def cancel_delivery(self, delivery_id: Hashable) -> bool:
        """Stop retransmitting the delivery ``delivery_id`` at once.

        Cancels its cancel scope and removes it from the queue; the callback is
        not called. Returns False when there was no such delivery.
        """
        d = self._queue.pop(delivery_id, None)
        if d is None:
            return False
        d.scope.cancel()
        d.done = True
        return True

    def _count_failure(self, reason: DeliveryFailure) -> None:
        self._failures[reason.value] = self._failures.get(reason.value, 0) + 1

    # ----- statistics -----------------------------------------------------------------

    def statistics(self) -> DispatcherStatistics:
        """Counters of packets, retransmissions, failures, queue and cache."""
        return DispatcherStatistics(
            packets_in=self._packets_in,
            packets_out=self._packets_out,
            retransmissions=self._retransmissions,
            redeliveries=self._redeliveries,
            absorbed=self._absorbed,
            dropped=self._dropped,
            deliveries_pending=len(self._queue),
            failures=dict(self._failures),
            cache_size=len(self._cache),
            receiver_errors=self._receiver_errors,
            legs={
                f"{leg.proto}:{format_address(leg.address)}": leg.statistics() for leg in self._legs
            },
        )


def _via_destination(via: Via) -> tuple[str, str, int]:
    # RFC 3261 section 18.2.2 with RFC 3581 section 4: (transport, host, port)
    # of a response.
    port = via.default_port()
    received = via.received
    if via.reliable:
        # The request's connection is gone: a new one to received, on the
        # sent-by port. rport is the client's source port, where nothing
        # listens; RFC 3581 uses it over unreliable transports only.
        host = received if received is not None else via.host
    elif via.maddr is not None:
        # maddr comes before received, and then rport does not count.
        host = via.maddr
    elif received is not None:
        host = received
        rport = via.rport
        if type(rport) is int:  # not the bare flag (True): a real port
            port = rport
    else:
        host = via.host
    return via.transport.lower(), host, port


async def _await(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("delivery callback failed")
