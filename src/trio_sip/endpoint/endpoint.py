"""The Endpoint: the UA core on top of the Dispatcher (RFC 3261 sections 8, 12-17).

It receives every packet from a :class:`~trio_sip.dispatcher.Dispatcher`,
owns the transaction machines of :mod:`trio_sip.transaction` (it runs
their timers on anyio and sends what they say, always with
``do_retransmits=False``: the machines decide, the Dispatcher executes)
and groups transactions into :class:`~trio_sip.endpoint.dialog.Dialog`\\ s.

Server side: requests reach the application through :meth:`Endpoint.incoming`
and are answered with :meth:`Endpoint.respond`; the Endpoint itself answers
what the RFC leaves no choice about (481, 491, 500, CANCEL, OPTIONS,
405/501, 100 Trying after 200 ms). Client side: :meth:`Endpoint.new_request`
returns a :class:`ClientRequest` to await the final response on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..dispatcher import Dispatcher
from ..errors import DeliveryError, SIPError
from ..message import (
    KNOWN_METHODS,
    URI,
    CSeq,
    Headers,
    NameAddr,
    Request,
    Response,
    make_cancel,
    make_response,
    new_call_id,
    new_tag,
)
from ..message.digest import Challenge, authorize, choose_challenge, parse_challenges
from ..message.headers import canonical_name
from ..resolver import Target
from ..transaction import (
    WAIT_TIMERS,
    AckReceived,
    ArmTimer,
    CancelSent,
    CancelTimer,
    ClientInviteState,
    ClientInviteTransaction,
    ClientKey,
    ClientNonInviteTransaction,
    Failure,
    InformTU,
    LegacyServerKey,
    PassToTU,
    RequestRetransmitted,
    Retransmit,
    RetransmitKind,
    SendAck,
    ServerInviteState,
    ServerInviteTransaction,
    ServerKey,
    ServerNonInviteState,
    ServerNonInviteTransaction,
    Terminate,
    Timer,
    TimerFired,
    Transmit,
    TransportFailed,
    ack_key,
    cancel_target_key,
    client_key,
    client_transaction,
    response_from_tu,
    response_received,
    retransmit_intervals,
    server_key,
    server_transaction,
)
from ..transaction.machines import Action, Event
from ..transport.leg import Address, Leg, TransportFailure
from .dialog import (
    DIALOG_CREATING_METHODS,
    TARGET_REFRESH_METHODS,
    Dialog,
    DialogId,
    DialogState,
    dialog_id_of_request,
    dialog_id_of_response,
)
from .scheduler import Scheduled, Scheduler

__all__ = [
    "ClientRequest",
    "CredentialSource",
    "Endpoint",
    "EndpointStatistics",
    "KNOWN_METHODS",
    "RequestFailed",
    "RequestHandler",
]

log = logging.getLogger("trio_sip.endpoint")


_DEFAULT_ALLOW = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "MESSAGE")

#: How often a 3xx is followed before the last one is returned (a redirect loop).
_MAX_REDIRECTS = 5

#: How many times one request is sent again with credentials: a realm each,
#: and a few stale nonces, but not forever for a server that calls every
#: nonce stale.
_MAX_AUTH_RETRIES = 5

#: How many To URIs keep the challenges answered for them (the least recent go).
_AUTH_KEPT = 256
#: How many nonces keep their count of uses (the least recent go).
_NONCES_KEPT = 1024

#: How many of our Contacts are kept made (one per leg, or per address a leg advertised).
_CONTACTS_KEPT = 64

#: (username, password) for digest, or a function from realm to them (None: no answer).
CredentialSource = tuple[str, str] | Callable[[str], tuple[str, str] | None]

#: What :meth:`Endpoint.set_request_handler` takes: called with each new
#: request; returns None, or an awaitable for what must wait.
RequestHandler = Callable[[Request], Awaitable[object] | None]


class RequestFailed(SIPError):
    """A client request ended without a usable final response.

    Not raised for error responses, which :meth:`ClientRequest.wait_final`
    returns; raised for misuse such as cancelling a request that is no INVITE.
    """


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """What an :class:`Endpoint` holds right now, and counters."""

    client_transactions: int
    server_transactions: int
    dialogs: int
    pending_2xx: int
    incoming_queued: int
    requests_received: int
    requests_rejected: int
    #: Timers armed now (transaction timers, 100 Trying, 2xx retransmission, ACK memory).
    timers: int = 0


# ----- transactions with their I/O state ----------------------------------------------


@dataclass(eq=False, slots=True)
class _ClientTx:
    machine: ClientInviteTransaction | ClientNonInviteTransaction
    leg: Leg
    dst: Address
    owner: ClientRequest | None
    timers: dict[Timer, Scheduled] = field(default_factory=dict)
    #: The key it is filed under in Endpoint._client, once filed. Kept, not
    #: recomputed: a request whose first send failed has lost its Via.
    key: ClientKey | None = None
    #: The name a TLS peer's certificate must carry (the resolved target's);
    #: None: its address.
    tls_hostname: str | None = None


@dataclass(eq=False, slots=True)
class _ServerTx:
    machine: ServerInviteTransaction | ServerNonInviteTransaction
    leg: Leg
    source: Address
    #: The key it is filed under in Endpoint._server (17.2.3). Kept, not
    #: recomputed: a lingering request has dropped its parsed views, and
    #: its end (Timer J, L) would parse its Via again.
    key: ServerKey | LegacyServerKey
    timers: dict[Timer, Scheduled] = field(default_factory=dict)
    #: The delayed 100 Trying (17.2.1), while it may still go out.
    trying: Scheduled | None = None
    #: A CANCEL arrived for it (9.2).
    cancelled: bool = False
    #: A CANCEL ended it: it was answered 487 (9.2).
    ended_by_cancel: bool = False
    #: Called once a CANCEL ended it (after the 487): Endpoint.on_cancelled.
    on_cancel: Callable[[], object] | None = None
    dialog: Dialog | None = None
    #: Its 2xx, retransmitted until the ACK (an INVITE answered 2xx).
    answered: _Pending2xx | None = None
    #: Further keys it is filed under: an RFC 2543 client's ACK (17.2.3).
    #: (A tuple, empty for nearly every transaction: no list per transaction.)
    extra_keys: tuple[ServerKey | LegacyServerKey, ...] = ()
    _local_tag: str | None = None

    @property
    def local_tag(self) -> str:
        """Our To tag for the answers, made when first needed: a request
        inside a dialog (a BYE) has its To tag already, and a fresh one
        costs a read of the system's random source."""
        tag = self._local_tag
        if tag is None:
            tag = self._local_tag = new_tag()
        return tag


@dataclass(eq=False, slots=True)
class _Pending2xx:
    """A 2xx to an INVITE we retransmit until its ACK (13.3.1.4)."""

    response: Response
    invite: Request
    dialog: Dialog
    #: The key of its INVITE transaction: the dialog's end finds it there.
    key: ServerKey | LegacyServerKey
    #: When the 2xx goes again (None once settled), and when the wait for the ACK ends (64*T1).
    intervals: Iterator[float] | None
    next_at: float
    give_up_at: float
    #: The next retransmission (or the end of the wait), while one is armed.
    timer: Scheduled | None = None
    #: True once the ACK came, or the wait for it ended without one.
    settled: bool = False
    #: Made only when someone waits (wait_ack): most 2xx answers have no waiter.
    acked: anyio.Event | None = None
    ack: Request | None = None
    #: Its transaction ended before it settled: forgotten once it does.
    orphan: bool = False


@dataclass(eq=False, slots=True)
class _DialogEnd:
    """What to do when a dialog ends: wake its waiters, call its callbacks."""

    event: anyio.Event | None = None
    callbacks: list[Callable[[], object]] = field(default_factory=list)
    #: Its requests from the peer still without a final answer (an INVITE
    #: that only rang, a re-INVITE ...): a BYE ends them with 487 (15.1.2).
    pending: list[_ServerTx] | None = None

    def fire(self) -> None:
        if self.event is not None:
            self.event.set()
        for callback in self.callbacks:
            callback()


# ----- the client request handle ------------------------------------------------------


class ClientRequest:
    """A request this Endpoint sent, and what came back (RFC 3261 section 8.1).

    Await :meth:`wait_final` for the final response; iterate
    :meth:`provisionals` for the 1xx ones. For an INVITE, :attr:`dialogs`
    lists the dialogs the responses created (early, then confirmed), and
    :meth:`cancel` sends a CANCEL (section 9.1). Authentication (401/407)
    and, when asked, redirection (3xx) are handled inside: the request is
    sent again and :attr:`request` is the latest one sent.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        request: Request,
        *,
        credentials: CredentialSource | None,
        follow_redirects: bool,
        keep_forks: bool,
    ) -> None:
        self._endpoint = endpoint
        #: The request as last sent (after an auth retry or a redirect, the new one).
        self.request = request
        #: The final response, once there is one.
        self.final: Response | None = None
        #: Every dialog the responses created, the one of :attr:`final` first when a 2xx.
        self.dialogs: list[Dialog] = []
        #: Dialogs of extra 2xx responses (forking) kept because ``keep_forks`` was set.
        self.forks: list[Dialog] = []
        self.credentials = credentials
        self.follow_redirects = follow_redirects
        self.keep_forks = keep_forks
        self._tx: _ClientTx | None = None
        self._done = anyio.Event()
        self._got_provisional = False
        self._cancel_wanted = False
        self._cancel_sent = False
        # Realm -> (header, challenge, credentials) of each challenge answered
        # so far: every retry answers them all (22.3: a proxy's and the UAS's).
        self._answered_realms: dict[str, tuple[str, Challenge, tuple[str, str]]] = {}
        # Realm -> (header, challenge) of each challenge answered: the
        # Endpoint keeps them for the next request to the same To (22.2).
        self._challenges: dict[str, tuple[str, Challenge]] = {}
        self._auth_retries = 0
        self._redirects = 0
        #: Targets not tried yet (RFC 3263 4.3), each with the leg that reaches it.
        self._routes: list[tuple[Leg, Target]] = []
        #: Every provisional response so far, in order of arrival.
        self.provisional_responses: list[Response] = []
        self._changed = anyio.Event()

    @property
    def method(self) -> str:
        """The request method."""
        return self.request.method

    @property
    def done(self) -> bool:
        """True once the final response (or the failure) is known."""
        return self._done.is_set()

    async def wait_final(self) -> Response:
        """Wait for the final response and return it, whatever its status.

        A timeout (Timer B or F) gives a locally made 408 and a transport
        failure a 503 (section 8.1.3.1). No timeout argument: bound it with
        ``anyio.move_on_after``; when the caller's scope cancels the wait of
        an INVITE, a CANCEL goes out (after the first provisional, 9.1).
        """
        try:
            await self._done.wait()
        except anyio.get_cancelled_exc_class():
            if self.method == "INVITE" and not self.done:
                self._endpoint._spawn(self.cancel)
            raise
        assert self.final is not None
        return self.final

    async def provisionals(self) -> AsyncIterator[Response]:
        """The provisional responses, from the first, as they arrive; ends with the final one."""
        seen = 0
        while True:
            while seen < len(self.provisional_responses):
                seen += 1
                yield self.provisional_responses[seen - 1]
            if self.done:
                return
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def cancel(self) -> None:
        """Cancel a pending INVITE (section 9.1).

        The CANCEL goes out once a provisional response has arrived (before
        that it "MUST NOT be sent"); after a final response nothing happens.
        A 2xx that crosses the CANCEL is acknowledged and its dialog ended
        with BYE. The final response (usually 487) still comes through
        :meth:`wait_final`.
        """
        if self.method != "INVITE":
            raise RequestFailed(f"only an INVITE can be cancelled, not {self.method}")
        self._cancel_wanted = True
        await self._maybe_send_cancel()

    async def _maybe_send_cancel(self) -> None:
        tx = self._tx
        if self._cancel_sent or self.done or not self._got_provisional or tx is None:
            return
        machine = tx.machine
        if not isinstance(machine, ClientInviteTransaction):
            return
        if machine.state is not ClientInviteState.PROCEEDING:
            return
        self._cancel_sent = True
        cancel = make_cancel(machine.request)
        # 9.1: the CANCEL goes where the INVITE went, in its own transaction.
        await self._endpoint._start_client(cancel, None, tx.leg, tx.dst, tx.tls_hostname)
        await self._endpoint._feed_client(tx, CancelSent())

    def _finish(self, response: Response) -> None:
        self.final = response
        self._endpoint._keep_challenges(self, response)
        self._done.set()
        self._notify()

    def __repr__(self) -> str:
        state = self.final.status if self.final is not None else "pending"
        return f"<ClientRequest {self.request.summary()} {state}>"


# ----- the Endpoint -------------------------------------------------------------------


class Endpoint:
    """The UA core: transactions, dialogs and the automatic answers of RFC 3261.

    ``user`` goes into the Contact and default From URIs. ``allow``,
    ``accept`` and ``supported`` are announced in OPTIONS answers (11.2);
    methods outside ``allow`` get 405 (known) or 501 (unknown), and a
    request that requires an option tag outside ``supported`` gets 420
    (8.2.2.3). Requests
    the application has not taken yet queue up to ``queue_size``; beyond
    that new requests get 503. ``credentials`` answer 401/407 challenges
    unless a request brings its own. ``call_ids`` makes the Call-ID of each
    request that starts outside a dialog (default
    :func:`~trio_sip.message.new_call_id`); a worker of several behind one
    address uses it to have the answers come back to itself
    (:func:`~trio_sip.transport.shard.call_id_of_shard`).

    Entering it starts its task group and becomes the Dispatcher's
    receiver; the Dispatcher's response cache is switched off because the
    server transactions answer retransmissions themselves. Leaving it ends
    every confirmed dialog with a BYE and cancels pending INVITEs, waiting
    at most ``close_timeout`` seconds (default 64*T1) for their answers;
    :meth:`abandon_close` cuts that wait short.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        user: str | None = None,
        allow: Iterable[str] = _DEFAULT_ALLOW,
        accept: Iterable[str] = ("application/sdp",),
        supported: Iterable[str] = (),
        user_agent: str | None = "trio-sip",
        credentials: CredentialSource | None = None,
        queue_size: int = 100,
        trying_delay: float = 0.2,
        close_timeout: float | None = None,
        call_ids: Callable[[], str] = new_call_id,
    ) -> None:
        self.dispatcher = dispatcher
        #: Makes the Call-ID of a request outside a dialog.
        self.new_call_id = call_ids
        self.user = user
        self.allow = tuple(m.upper() for m in allow)
        self.accept = tuple(accept)
        self.supported = tuple(supported)
        self.user_agent = user_agent
        self.credentials = credentials
        self.config = dispatcher.timers
        #: 17.2.1: the 100 Trying goes out when the TU has not answered in 200 ms.
        self.trying_delay = trying_delay
        self.close_timeout = (
            close_timeout if close_timeout is not None else self.config.duration(Timer.F)
        )
        # The waits of closing under way (close_wait), and whether
        # abandon_close() was called: a wait that starts after it ends at once.
        self._close_waits: set[anyio.CancelScope] = set()
        self._close_abandoned = False
        self._client: dict[ClientKey, _ClientTx] = {}
        # Requests between "Via written" and "deliver() returned": a fast
        # peer's answer may arrive before the transaction is filed by key.
        self._in_flight: set[_ClientTx] = set()
        self._server: dict[ServerKey | LegacyServerKey, _ServerTx] = {}
        self._dialogs: dict[DialogId, Dialog] = {}
        # Per live dialog: what to do when it ends. The Event is made only
        # when someone waits (wait_dialog_ended), the callbacks only when asked.
        self._dialog_ended: dict[DialogId, _DialogEnd] = {}
        self._pending_2xx: dict[tuple[DialogId, int], _Pending2xx] = {}
        #: The 2xx answers to INVITEs by id(response), for wait_ack(), while their dialog lives.
        self._answered: dict[DialogId, dict[int, _Pending2xx]] = {}
        self._contacts: dict[URI, tuple[NameAddr, str]] = {}
        self._acks: dict[DialogId, Request] = {}
        # Requests sent with each nonce (its nc), the most recent last.
        self._nonce_counts: OrderedDict[str, int] = OrderedDict()
        # To URI -> realm -> (header, challenge): the challenges answered
        # for requests to that To, answered again unasked (RFC 3261 22.2).
        self._auth_cache: OrderedDict[str, dict[str, tuple[str, Challenge]]] = OrderedDict()
        self._client_requests: set[ClientRequest] = set()
        send, receive = anyio.create_memory_object_stream[Request](queue_size)
        self._in_send: MemoryObjectSendStream[Request] = send
        self._in_receive: MemoryObjectReceiveStream[Request] = receive
        # Set by set_request_handler: called inline instead of queueing to incoming().
        self._request_handler: RequestHandler | None = None
        # Responses that could not go at once (a stream, a name to resolve, a
        # full buffer), in order: while any wait, later ones queue behind them.
        self._outbox: deque[tuple[Response, Leg]] = deque()
        self._flushing = False
        self._flushed: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        # Every timer of every transaction and dialog, on one task.
        self._timers = Scheduler()
        self._received = 0
        self._rejected = 0

    # ----- life cycle -----------------------------------------------------------------

    async def __aenter__(self) -> Endpoint:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._timers.run)
        # The server transactions answer retransmitted requests and absorb
        # the ACK of a non-2xx; a second copy of that logic in the cache
        # would swallow what the machines must see.
        self.dispatcher.response_cache = False
        self.dispatcher.set_receiver(self._receive_now)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            with self.close_wait():
                await self._close_dialogs()
        finally:
            self.dispatcher.set_receiver(None)
            self._in_send.close()
            self._in_receive.close()
            tg, self._tg = self._tg, None
            assert tg is not None
            tg.cancel_scope.cancel()
            await tg.__aexit__(*exc_info)
        return None

    @contextlib.contextmanager
    def close_wait(self) -> Iterator[anyio.CancelScope]:
        """A wait of closing down: for the answer to a BYE, a CANCEL, an un-REGISTER.

        The block is shielded from cancellation (an application that stops
        by cancelling its tasks still ends its calls in order), ends after
        :attr:`close_timeout` seconds, and ends at once when
        :meth:`abandon_close` is called, before or during it. The Endpoint's
        own close waits in one; so do the :class:`~trio_sip.UserAgent`'s
        hang-ups and its un-REGISTER.
        """
        with anyio.move_on_after(self.close_timeout, shield=True) as scope:
            if self._close_abandoned:
                scope.cancel()
            self._close_waits.add(scope)
            try:
                yield scope
            finally:
                self._close_waits.discard(scope)

    def abandon_close(self) -> None:
        """Stop waiting for the peers while closing down (a second Ctrl-C).

        Every :meth:`close_wait` under way ends now, and those that start
        later end at once: what was sent has gone, and nobody waits for
        its answer (a peer that vanished would otherwise hold the close
        for :attr:`close_timeout`). Called before the Endpoint is left,
        its close waits for nothing.
        """
        self._close_abandoned = True
        for scope in list(self._close_waits):
            scope.cancel()

    async def _close_dialogs(self) -> None:
        async with anyio.create_task_group() as tg:
            for tx in list(self._server.values()):
                machine = tx.machine
                if machine.state in (
                    ServerInviteState.PROCEEDING,
                    ServerNonInviteState.TRYING,
                    ServerNonInviteState.PROCEEDING,
                ):
                    # Nobody will answer any more: say so rather than let the
                    # caller wait for its Timer B.
                    self._close_answer(tx)
            for request in list(self._client_requests):
                if request.method == "INVITE" and not request.done:
                    request.keep_forks = False
                    tg.start_soon(request.cancel)
            for dialog in list(self._dialogs.values()):
                if dialog.confirmed:
                    tg.start_soon(self._bye, dialog)
            tg.start_soon(self.wait_sent)

    def _close_answer(self, tx: _ServerTx) -> None:
        try:
            self._respond(tx, 480 if isinstance(tx.machine, ServerInviteTransaction) else 503)
        except SIPError as exc:
            log.info("could not answer %r on close: %s", tx.machine, exc)

    async def _bye(self, dialog: Dialog) -> None:
        if dialog.id not in self._dialogs:
            return  # ended meanwhile (a BYE from the peer, or ours)
        try:
            await self.request(dialog, "BYE")
        except SIPError as exc:
            log.info("BYE for %s failed: %s", dialog.id, exc)

    def _spawn(self, fn: Callable[[], Any]) -> None:
        if self._tg is not None:
            self._tg.start_soon(fn)

    # ----- public API: server side ----------------------------------------------------

    async def incoming(self) -> AsyncIterator[Request]:
        """The requests for the application, one by one, until the Endpoint closes.

        Every request except ACK and CANCEL must be answered with
        :meth:`respond` (BYE, OPTIONS and the requests the Endpoint rejects
        itself never show up here).
        """
        try:
            async for request in self._in_receive:
                yield request
        except anyio.ClosedResourceError:
            return  # the Endpoint closed while we waited

    async def respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Answer ``request`` (received through :meth:`incoming`) with ``status``.

        The response gets this side's To tag (except 100), and a Contact
        when it creates or refreshes a dialog. A 101-299 answer to an INVITE
        creates the dialog; a 2xx to an INVITE is retransmitted until its
        ACK, and if none comes within 64*T1 the dialog is ended with BYE
        (13.3.1.4). Returns the response sent.

        Raises :class:`~trio_sip.transaction.TransactionUsageError` when
        the request already has its final response, e.g. the 487 the
        Endpoint sent because the caller cancelled.
        """
        response = self.respond_nowait(request, status, reason, headers=headers, body=body)
        await self.wait_sent()
        return response

    def respond_nowait(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """:meth:`respond` without waiting, for a caller with no task (a request handler).

        The response goes out before this returns when it can go at once
        (UDP to an address); otherwise (a stream, a name to resolve, a full
        socket buffer) it is queued, in order, for the Endpoint's own task.
        """
        tx = self._server.get(server_key(request))
        if tx is None:
            raise RequestFailed(f"no transaction for {request.summary()} (answered already?)")
        return self._respond(tx, status, reason, headers=headers, body=body)

    def set_request_handler(self, handler: RequestHandler | None) -> None:
        """Give each request that :meth:`incoming` would yield to ``handler`` instead, at once.

        ``handler(request)`` runs inline, in the Dispatcher's receive path
        (no queue, no task switch): it answers with :meth:`respond_nowait`,
        or returns an awaitable for the work that must wait, which the
        Dispatcher awaits in a handler task (later requests of the same
        source wait behind it). An exception it raises, or its awaitable
        raises, is logged and the request, unless answered, gets 500. None
        goes back to :meth:`incoming`.
        """
        self._request_handler = handler

    async def wait_ack(self, response: Response) -> Request | None:
        """Wait for the ACK of ``response``, a 2xx to an INVITE that :meth:`respond` sent.

        Returns the ACK (which may carry the SDP answer of a late offer), or
        None when none came within 64*T1: then the Endpoint has already sent
        a BYE (13.3.1.4). Raises :class:`RequestFailed` for any other
        response, one whose dialog is over, or one whose INVITE transaction
        has ended: the ACK is kept as long as that transaction lives (64*T1
        after the 2xx, RFC 6026 section 7.1), not for the whole dialog.
        """
        did = _uas_dialog_id(response)
        pending = self._answered.get(did, {}).get(id(response)) if did is not None else None
        if pending is None or pending.response is not response:
            raise RequestFailed(f"{response.summary()} is no 2xx to an INVITE in a live dialog")
        if not pending.settled:
            if pending.acked is None:
                pending.acked = anyio.Event()
            await pending.acked.wait()
        else:
            await anyio.lowlevel.checkpoint()
        return pending.ack

    def dialog_of(self, message: Request | Response) -> Dialog | None:
        """The dialog ``message`` belongs to, once it has one."""
        if isinstance(message, Request):
            tx = self._server.get(server_key(message))
            if tx is not None and tx.dialog is not None:
                return tx.dialog
            did = dialog_id_of_request(message)
        else:
            did = dialog_id_of_response(message)
        return self._dialogs.get(did) if did is not None else None

    def was_cancelled(self, request: Request) -> bool:
        """True when a CANCEL arrived for the INVITE ``request``."""
        tx = self._server.get(server_key(request))
        return tx is not None and tx.cancelled

    def on_cancelled(self, request: Request, callback: Callable[[], object]) -> None:
        """Call ``callback`` (synchronous) when a CANCEL ends the INVITE ``request`` with 487.

        So does the caller's BYE of the early dialog (15.1.2).

        For a caller with no task waiting on the INVITE (the UserAgent's
        incoming calls). Called at once when that happened already; never
        when the INVITE got its final response first. One callback per
        INVITE: a second replaces the first.
        """
        tx = self._server.get(server_key(request))
        if tx is None:
            return
        if tx.ended_by_cancel:
            callback()
            return
        tx.on_cancel = callback

    async def wait_dialog_ended(self, dialog: Dialog) -> None:
        """Wait until ``dialog`` is over (BYE either way, missing ACK, closing)."""
        ended = self._dialog_ended.get(dialog.id)
        if ended is None:
            await anyio.lowlevel.checkpoint()
            return
        if ended.event is None:
            ended.event = anyio.Event()
        await ended.event.wait()

    def on_dialog_ended(self, dialog: Dialog, callback: Callable[[], object]) -> None:
        """Call ``callback`` (synchronous, no arguments) when ``dialog`` is over.

        What :meth:`wait_dialog_ended` waits for, for a caller that has no
        task to wait in (the UserAgent's calls). Called at once when the
        dialog is over already. An exception from ``callback`` propagates to
        whatever ended the dialog.
        """
        ended = self._dialog_ended.get(dialog.id)
        if ended is None:
            callback()
            return
        ended.callbacks.append(callback)

    @property
    def dialogs(self) -> tuple[Dialog, ...]:
        """The dialogs alive now."""
        return tuple(self._dialogs.values())

    # ----- public API: client side ----------------------------------------------------

    async def new_request(
        self,
        method: str,
        target: URI | str | Dialog,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        from_: NameAddr | str | None = None,
        to: NameAddr | str | None = None,
        credentials: CredentialSource | None = None,
        follow_redirects: bool = False,
        keep_forks: bool = False,
        call_id: str | None = None,
        cseq: int | None = None,
    ) -> ClientRequest:
        """Send a request and return its :class:`ClientRequest` at once.

        ``target`` is a URI for a request outside any dialog (8.1.1: a new
        Call-ID and From tag), or a :class:`Dialog` for one inside it
        (12.2.1.1). ``credentials`` (default: the Endpoint's) answer 401
        and 407; ``follow_redirects`` follows 3xx Contacts; ``keep_forks``
        keeps the dialogs of extra 2xx responses to an INVITE instead of
        ending them with BYE.

        ``call_id`` and ``cseq`` (outside a dialog only) continue a sequence
        of requests, such as the REGISTERs of one UA to one registrar
        (RFC 3261 section 10.2: one Call-ID, the CSeq one higher each time);
        by default the Call-ID is new and the CSeq number random. An auth
        retry raises the CSeq by one more: :attr:`ClientRequest.request` is
        the one last sent.
        """
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise RequestFailed(f"{method} is sent by the Endpoint itself")
        if isinstance(target, Dialog):
            if call_id is not None or cseq is not None:
                raise ValueError("a dialog's requests take its Call-ID and CSeq")
            request = target.create_request(method, headers, body)
        else:
            if call_id is not None and (not call_id.isprintable() or " " in call_id or not call_id):
                raise ValueError(f"not a Call-ID: {call_id!r}")
            if cseq is not None and not 0 <= cseq < 2**31:
                raise ValueError(f"CSeq number {cseq} is not below 2**31 (RFC 3261 8.1.1.5)")
            request = self._out_of_dialog(
                method, target, headers, body, from_, to, call_id=call_id, cseq=cseq
            )
        if self.user_agent and "user-agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        source = credentials if credentials is not None else self.credentials
        if source is not None and self._auth_cache and not isinstance(target, Dialog):
            self._answer_unasked(request, source)
        client = ClientRequest(
            self,
            request,
            credentials=source,
            follow_redirects=follow_redirects,
            keep_forks=keep_forks,
        )
        self._client_requests.add(client)
        await self._send_new(client, request)
        if isinstance(target, Dialog) and method == "BYE":
            # 15.1.1: the session is over as soon as the BYE is on its way;
            # its response is matched by the transaction, not the dialog.
            self._end_dialog(target)
        return client

    async def request(self, target: URI | str | Dialog, method: str, **kwargs: Any) -> Response:
        """:meth:`new_request` and :meth:`ClientRequest.wait_final` in one call."""
        client = await self.new_request(method, target, **kwargs)
        return await client.wait_final()

    def statistics(self) -> EndpointStatistics:
        """Transactions, dialogs and queued requests now; counters since start."""
        return EndpointStatistics(
            client_transactions=len(self._client),
            server_transactions=len(self._server),
            dialogs=len(self._dialogs),
            pending_2xx=len(self._pending_2xx),
            incoming_queued=self._in_receive.statistics().current_buffer_used,
            requests_received=self._received,
            requests_rejected=self._rejected,
            timers=self._timers.statistics().pending,
        )

    # ----- building requests ----------------------------------------------------------

    def _out_of_dialog(
        self,
        method: str,
        target: URI | str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        from_: NameAddr | str | None,
        to: NameAddr | str | None,
        *,
        call_id: str | None = None,
        cseq: int | None = None,
    ) -> Request:
        uri = URI.parse(target) if isinstance(target, str) else target
        to_addr = NameAddr.parse(to) if isinstance(to, str) else (to or NameAddr(uri))
        if isinstance(from_, str):
            from_addr = NameAddr.parse(from_)
        elif from_ is not None:
            from_addr = from_
        else:
            from_addr = NameAddr(URI("sip", self._local_host(), user=self.user or "anonymous"))
        out = Headers()
        out.add("Max-Forwards", "70")
        out.add("From", str(from_addr.with_tag(new_tag())))
        out.add("To", str(to_addr))
        out.add("Call-ID", call_id if call_id is not None else self.new_call_id())
        # 8.1.1.5: any number below 2**31 will do.
        seq = cseq if cseq is not None else secrets.randbelow(2**16) + 1
        out.add("CSeq", str(CSeq(seq, method)))
        for name, value in headers:
            out.add(name, value)
        out.set("Content-Length", str(len(body)))
        return Request(method, uri.replace(headers=()), out, body)

    def _local_host(self) -> str:
        legs = self.dispatcher.legs
        return legs[0].sent_by().rsplit(":", 1)[0].strip("[]") if legs else "invalid"

    def _add_contact(self, message: Request | Response, leg: Leg) -> NameAddr:
        existing = message.contacts
        if existing:
            return existing[0]
        contact = NameAddr(leg.contact_uri(self.user))
        message.headers.add("Contact", str(contact))
        return contact

    # ----- routing and sending --------------------------------------------------------

    async def _route(self, request: Request) -> list[tuple[Leg, Target]]:
        # The machines retransmit themselves, so they need the one leg and
        # address the request went to; the Dispatcher's route choice
        # (outgoing proxy, domain2proxy, RFC 3263) is reused, not repeated.
        disp = self.dispatcher
        targets = await disp.targets_for(request, None)
        out = []
        for target in targets:
            leg = disp.find_leg(target)
            if leg is not None:
                out.append((leg, target))
        return out

    async def _send_new(self, client: ClientRequest, request: Request) -> None:
        try:
            routes = await self._route(request)
        except DeliveryError as exc:
            log.info("no route for %s: %s", request.summary(), exc)
            client._finish(self._local_response(request, 503, "No Route"))
            return
        if not routes:
            client._finish(self._local_response(request, 503, "No Route"))
            return
        client._routes = routes[1:]
        await self._send_via(client, request, *routes[0])

    async def _send_via(
        self, client: ClientRequest, request: Request, leg: Leg, target: Target
    ) -> None:
        if request.method in DIALOG_CREATING_METHODS:
            contact = self._add_contact(request, leg)
            for dialog in client.dialogs:
                dialog.local_contact = contact
        await self._start_client(request, client, leg, target.address, target.hostname)

    async def _next_target(self, owner: ClientRequest) -> bool:
        """RFC 3263 4.3: after a transport error, a timeout or a 503, try the
        next target as a new transaction. False when there is none left."""
        if not owner._routes or owner.done:
            return False
        leg, target = owner._routes.pop(0)
        request = _resend_copy(owner.request, self._dialogs)
        owner.request = request
        log.info("trying the next target %s:%s for %s", target.host, target.port, request.summary())
        await self._send_via(owner, request, leg, target)
        return True

    async def _start_client(
        self,
        request: Request,
        owner: ClientRequest | None,
        leg: Leg,
        dst: Address,
        tls_hostname: str | None = None,
    ) -> _ClientTx:
        machine = client_transaction(request, reliable=leg.reliable, config=self.config)
        tx = _ClientTx(machine, leg, dst, owner, tls_hostname=tls_hostname)
        if owner is not None:
            owner._tx = tx
            # 9.1 counts provisionals of the transaction being cancelled.
            owner._got_provisional = False
        await self._perform_client(tx, machine.start())
        return tx

    async def _feed_client(self, tx: _ClientTx, event: Event) -> None:
        await self._perform_client(tx, tx.machine.handle(event))

    async def _perform_client(self, tx: _ClientTx, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Transmit(message=message) if isinstance(message, Request):
                    await self._transmit_request(tx, message)
                case Retransmit(message=message):
                    await self._send_raw(tx, bytes(message))
                case SendAck(ack=ack):
                    await self._deliver_quietly(ack, tx.leg, tx.dst, tx.tls_hostname)
                case ArmTimer(timer=timer, delay=delay):
                    self._arm(tx, timer, delay)
                case CancelTimer(timer=timer):
                    self._cancel_timer(tx, timer)
                case PassToTU(message=message) if isinstance(message, Response):
                    await self._client_response(tx, message)
                case InformTU(reason=reason):
                    status = 408 if reason is Failure.TIMEOUT else 503
                    await self._client_failed(tx, status)
                case Terminate():
                    if tx.key is not None and self._client.get(tx.key) is tx:
                        del self._client[tx.key]
                case _:
                    log.debug("client transaction action %r ignored", action)

    async def _transmit_request(self, tx: _ClientTx, request: Request) -> None:
        # ACK-less first send: the Dispatcher adds the Via (and its branch)
        # for the leg, then the transaction is known by that branch. CANCEL
        # already carries the INVITE's Via and keeps it.
        self._in_flight.add(tx)
        try:
            await self.dispatcher.deliver(
                request,
                leg=tx.leg,
                dst_addr=tx.dst,
                do_retransmits=False,
                tls_hostname=tx.tls_hostname,
            )
        except DeliveryError as exc:
            log.info("sending %s failed: %s", request.summary(), exc)
            await self._feed_client(tx, TransportFailed(str(exc)))
            return
        finally:
            self._in_flight.discard(tx)
        if not tx.machine.terminated:
            tx.key = tx.machine.key
            self._client[tx.key] = tx

    async def _send_raw(self, tx: _ClientTx, data: bytes) -> None:
        try:
            await tx.leg.send(data, tx.dst, tls_hostname=tx.tls_hostname)
        except TransportFailure as exc:
            await self._feed_client(tx, TransportFailed(str(exc)))

    def _send_response(self, response: Response, leg: Leg) -> None:
        # A server transaction's answers never make anyone wait: over UDP to
        # an address they go now; the rest queue, in order, for one task.
        if not self._outbox:
            try:
                if self.dispatcher.respond_nowait(response, leg):
                    return
            except DeliveryError as exc:
                log.info("sending %s failed: %s", response.summary(), exc)
                return
        if self._tg is None:
            log.info("not sending %s: the Endpoint is closed", response.summary())
            return
        self._outbox.append((response, leg))
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush_outbox)

    async def _flush_outbox(self) -> None:
        outbox = self._outbox
        try:
            while outbox:
                response, leg = outbox[0]
                await self._deliver_quietly(response, leg)
                outbox.popleft()
        finally:
            self._flushing = False
            flushed, self._flushed = self._flushed, None
            if flushed is not None:
                flushed.set()

    async def wait_sent(self) -> None:
        """Wait until every response :meth:`respond_nowait` queued has gone.

        A checkpoint when none waits (UDP answers go at once).
        """
        if not self._outbox or not self._flushing:
            await anyio.lowlevel.checkpoint()
            return
        if self._flushed is None:
            self._flushed = anyio.Event()
        await self._flushed.wait()

    async def _deliver_quietly(
        self,
        message: Request | Response,
        leg: Leg | None = None,
        dst: Address | None = None,
        tls_hostname: str | None = None,
    ) -> bool:
        try:
            await self.dispatcher.deliver(
                message, leg=leg, dst_addr=dst, do_retransmits=False, tls_hostname=tls_hostname
            )
        except DeliveryError as exc:
            log.info("sending %s failed: %s", message.summary(), exc)
            return False
        return True

    # ----- timers ---------------------------------------------------------------------

    def _arm(self, tx: _ClientTx | _ServerTx, timer: Timer, delay: float) -> None:
        old = tx.timers.pop(timer, None)
        if old is not None:
            old.cancel()
        if tx.machine.terminated:
            return  # it ended while the actions that armed it were performed
        # The function with the Endpoint as an argument, not a bound method:
        # an object fewer per timer, and most timers wait out 64*T1.
        if timer in WAIT_TIMERS:
            # The waits that only end a transaction share wake-ups on a coarse
            # grid (two a call under load), and are not filed: a machine arms
            # each once, and one that fires after its transaction moved on
            # finds the machine no longer waiting for it (a TimerFired for a
            # timer not armed is absorbed). A lingering transaction's table
            # then stays empty, an object fewer for the collector to walk.
            self._timers.call_coarse(delay, Endpoint._timer_due, self, tx, timer)
            return
        tx.timers[timer] = self._timers.call_later(delay, Endpoint._timer_due, self, tx, timer)

    def _timer_due(self, tx: _ClientTx | _ServerTx, timer: Timer) -> Awaitable[object] | None:
        # A filed timer that fires is the one filed (re-arming or cancelling
        # one cancels its entry); a wait timer was never filed.
        tx.timers.pop(timer, None)
        if isinstance(tx, _ServerTx):
            # Retransmissions over UDP and the end of the transaction: quick.
            return self._feed_server(tx, TimerFired(timer))
        owner = tx.owner
        if timer in (Timer.B, Timer.F) or (owner is not None and owner._routes):
            # A timeout (or a failed retransmission) may move on to the next
            # target, a new transaction that may wait (a TCP connect): in a
            # task of its own, as the timer task must not wait for it.
            self._spawn(lambda: self._feed_client(tx, TimerFired(timer)))
            return None
        return self._feed_client(tx, TimerFired(timer))

    def _cancel_timer(self, tx: _ClientTx | _ServerTx, timer: Timer) -> None:
        entry = tx.timers.pop(timer, None)
        if entry is not None:
            entry.cancel()

    # ----- client side: responses -----------------------------------------------------

    def _local_response(self, request: Request, status: int, reason: str | None = None) -> Response:
        # 8.1.3.1: a timeout counts as 408 and a transport error as 503.
        return make_response(request, status, reason)

    async def _client_failed(self, tx: _ClientTx, status: int) -> None:
        owner = tx.owner
        if owner is None or owner._tx is not tx:
            return  # a CANCEL, or an attempt already given up for another target
        if await self._next_target(owner):
            return
        if not owner.done:
            owner._finish(self._local_response(tx.machine.request, status))
            self._client_requests.discard(owner)

    async def _client_response(self, tx: _ClientTx, response: Response) -> None:
        owner = tx.owner
        if owner is None:
            return  # a CANCEL's own answer: nothing to do with it
        request = tx.machine.request
        status = response.status
        if owner._tx is not tx and not 200 <= status < 300:
            return  # from a target we left (RFC 3263 failover) or an earlier attempt
        if request.method == "INVITE" and 101 <= status <= 299:
            await self._invite_dialog_response(owner, request, response)
        if status < 200:
            owner._got_provisional = True
            owner.provisional_responses.append(response)
            owner._notify()
            if owner._cancel_wanted:
                await owner._maybe_send_cancel()
            return
        if owner.done:
            return  # a further 2xx of a fork was handled above
        if request.method == "INVITE" and status >= 300:
            # 12.3: a non-2xx final response ends every early dialog of the
            # INVITE, also when a new INVITE follows it (auth, redirect, failover).
            for early in owner.dialogs:
                if early.state is DialogState.EARLY:
                    self._end_dialog(early)
        if await self._retried(owner, response):
            return
        if request.method != "INVITE" and request.method in TARGET_REFRESH_METHODS:
            # 12.2.1.2: a 2xx to a target refresh request (UPDATE ...) moves the target.
            did = _uac_dialog_id(request)
            refreshed = self._dialogs.get(did) if did is not None else None
            if refreshed is not None:
                refreshed.update_from_response(response, request.method)
        if request.method == "BYE" or status in (408, 481):
            # 15.1.1: after a BYE the session is over whatever the answer;
            # 12.2.1.2: a 408 or 481 to an in-dialog request ends the dialog,
            # a re-INVITE's too (14.1; a 408 is also our own timeout). An
            # initial INVITE has no dialog id: nothing ends here.
            did = _uac_dialog_id(request)
            ended = self._dialogs.get(did) if did is not None else None
            if ended is not None:
                self._end_dialog(ended)
        owner._finish(response)
        self._client_requests.discard(owner)

    async def _retried(self, owner: ClientRequest, response: Response) -> bool:
        """Whether ``response`` led to a new attempt: next target, credentials, redirect."""
        if owner._cancel_wanted:
            return False  # cancelled: no retry of any kind, this answer is the last
        status = response.status
        if status == 503:
            return await self._next_target(owner)
        if status in (401, 407):
            return await self._retry_with_auth(owner, response)
        if 300 <= status < 400 and owner.follow_redirects:
            return await self._redirect(owner, response)
        return False

    async def _invite_dialog_response(
        self, owner: ClientRequest, invite: Request, response: Response
    ) -> None:
        did = dialog_id_of_response(response)
        if did is None:
            return
        dialog = self._dialogs.get(did)
        if dialog is None:
            old_ack = self._acks.get(did)
            if old_ack is not None and old_ack.cseq.seq == invite.cseq.seq:
                # A retransmitted 2xx of a dialog we ended already: ACK only.
                await self._deliver_quietly(old_ack)
                return
            dialog = Dialog.from_uac(invite, response)
            self._add_dialog(dialog)
            owner.dialogs.append(dialog)
        else:
            dialog.update_from_response(response, "INVITE")
        if response.status < 200:
            return
        # 13.2.2.4: the UAC core sends the ACK itself, once per 2xx,
        # including every retransmission of it.
        ack = self._acks.get(did)
        if ack is None or ack.cseq.seq != invite.cseq.seq:
            ack = dialog.create_ack(invite.cseq.seq, _auth_headers(invite))
            self._acks[did] = ack
        await self._deliver_quietly(ack)
        final = owner.final
        if final is not None:
            if final.is_success and dialog_id_of_response(final) == did:
                return  # a retransmission of the 2xx the caller has
            # 13.2.2.4: a 2xx from another fork; ended unless wanted.
            if owner.keep_forks:
                if dialog not in owner.forks:
                    owner.forks.append(dialog)
                return
            self._spawn(lambda: self._bye(dialog))
            return
        dialogs = owner.dialogs
        if len(dialogs) > 1 and dialog in dialogs:
            # The first 2xx: its dialog is the answer, listed first (the
            # UserAgent follows dialogs[0]), before the early ones of forks
            # that only rang.
            dialogs.remove(dialog)
            dialogs.insert(0, dialog)
            if any(d.state is DialogState.EARLY for d in dialogs):
                # 13.2.2.4: 64*T1 after the first 2xx, the early dialogs not
                # confirmed by a 2xx of their own are over.
                self._timers.call_coarse(
                    self.config.duration(Timer.M), Endpoint._end_early_dialogs, self, owner
                )
        if owner._cancel_wanted:
            # The 2xx crossed our CANCEL (9.1): the call is not wanted any
            # more, so it is acknowledged and ended at once (15).
            owner._finish(response)
            self._client_requests.discard(owner)
            self._spawn(lambda: self._bye(dialog))

    def _end_early_dialogs(self, owner: ClientRequest) -> None:
        for dialog in owner.dialogs:
            if dialog.state is DialogState.EARLY:
                self._end_dialog(dialog)

    async def _retry_with_auth(self, owner: ClientRequest, response: Response) -> bool:
        source = owner.credentials
        if source is None:
            return False
        header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
        challenges = [
            c for value in response.headers.get_all(header) for c in parse_challenges(value)
        ]
        challenge = choose_challenge(challenges)
        if challenge is None:
            return False
        # One retry per challenge: a second one for the same realm means the
        # credentials are wrong, unless the server only says the nonce went
        # stale (RFC 3261 22.2, RFC 7616 3.3).
        if challenge.realm in owner._answered_realms and not challenge.stale:
            return False
        if owner._auth_retries >= _MAX_AUTH_RETRIES:
            return False  # a server that finds every nonce stale: its answer stands
        creds = source(challenge.realm) if callable(source) else source
        if creds is None:
            return False
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        owner._auth_retries += 1
        answered = owner._answered_realms
        answered[challenge.realm] = (name, challenge, creds)
        request = _resend_copy(owner.request, self._dialogs)
        # The copy has no credentials: those of the realms answered before
        # (a proxy's 407, then the UAS's 401) go again with this one, or the
        # first challenger would refuse the retry (22.3).
        for kept_name, kept, kept_creds in answered.values():
            self._answer(request, kept_name, kept, kept_creds)
        if challenge.qop:
            # Without qop there is no nonce count: a second use of the
            # nonce would look like a replay (RFC 7616 section 3.4).
            owner._challenges[challenge.realm] = (name, challenge)
        owner.request = request
        await self._send_new(owner, request)
        return True

    def _answer(
        self, request: Request, header: str, challenge: Challenge, creds: tuple[str, str]
    ) -> None:
        """Add to ``request`` the ``header`` answering ``challenge``, one more use of its nonce."""
        counts = self._nonce_counts
        nc = counts.pop(challenge.nonce, 0) + 1
        counts[challenge.nonce] = nc
        if len(counts) > _NONCES_KEPT:
            counts.popitem(last=False)
        credentials = authorize(
            challenge,
            username=creds[0],
            password=creds[1],
            method=request.method,
            uri=request.uri_text,
            body=request.body,
            nc=nc,
        )
        request.headers.add(header, str(credentials))

    def _answer_unasked(self, request: Request, source: CredentialSource) -> None:
        """Answer, before being asked, the challenges kept for the request's To (22.2).

        A server that finds the nonce stale or unknown challenges again,
        and that challenge is answered as usual.
        """
        key = str(request.to.uri)
        kept = self._auth_cache.get(key)
        if kept is None:
            return
        self._auth_cache.move_to_end(key)
        for realm, (header, challenge) in list(kept.items()):
            if challenge.nonce not in self._nonce_counts:
                # A nonce whose count was let go cannot be used again: the
                # server would take the count starting over for a replay.
                del kept[realm]
                continue
            if header.lower() in request.headers:
                continue  # the caller gave its own
            creds = source(realm) if callable(source) else source
            if creds is not None:
                self._answer(request, header, challenge, creds)

    def _keep_challenges(self, owner: ClientRequest, response: Response) -> None:
        """Keep what ``owner`` answered for the next request to its To, or forget it.

        A final 401 or 407 means the credentials did not do: the Endpoint
        then stops sending them unasked to that To.
        """
        cache = self._auth_cache
        refused = response.status in (401, 407)
        if not (owner._challenges or (refused and cache)):
            return
        to = owner.request.to
        if to.tag is not None:
            return  # inside a dialog: not answered unasked, nothing to keep
        key = str(to.uri)
        if refused:
            cache.pop(key, None)
        else:
            cache.setdefault(key, {}).update(owner._challenges)
            cache.move_to_end(key)
            if len(cache) > _AUTH_KEPT:
                cache.popitem(last=False)

    async def _redirect(self, owner: ClientRequest, response: Response) -> bool:
        contacts = response.contacts
        if not contacts or owner._redirects >= _MAX_REDIRECTS:
            return False
        owner._redirects += 1
        request = _resend_copy(owner.request, self._dialogs)
        # 8.1.3.4: the new request goes to the Contact, as a new transaction.
        request.uri = contacts[0].uri.replace(headers=())
        request.headers.remove("contact")
        owner.request = request
        await self._send_new(owner, request)
        return True

    # ----- receiving ------------------------------------------------------------------

    def _receive_now(
        self, packet: Request | Response, leg: Leg, from_addr: Address
    ) -> Awaitable[object] | None:
        # The Dispatcher's receiver, called in the leg's receive loop. The
        # server side runs here at once: requests, their transactions, our
        # answers and the application's request handler. What must wait
        # (a response to our request may start a transaction or a BYE; a
        # handler's slow work) comes back as an awaitable, for the
        # Dispatcher's handler task.
        if self._tg is None:
            # Closed (or closing): a late response, e.g. the 487 of a CANCEL
            # sent while closing, has nobody left to go to.
            return None
        if isinstance(packet, Response):
            return self._on_response(packet)
        return self._on_request(packet, leg, from_addr)

    async def receive(self, packet: Request | Response, leg: Leg, from_addr: Address) -> None:
        """The Dispatcher's receiver entry point: one packet from ``leg``."""
        pending = self._receive_now(packet, leg, from_addr)
        if pending is not None:
            await pending
        else:
            await anyio.lowlevel.checkpoint()

    async def _on_response(self, response: Response) -> None:
        key = client_key(response)
        tx = self._client.get(key)
        if tx is None:
            tx = self._in_flight_match(key)
        if tx is not None:
            await self._feed_client(tx, response_received(response))
            return
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            # A 2xx retransmitted after the transaction ended (or one from a
            # fork that came late): ACK it again from the dialog (13.2.2.4).
            did = dialog_id_of_response(response)
            ack = self._acks.get(did) if did is not None else None
            if ack is not None and ack.cseq.seq == response.cseq.seq:
                await self._deliver_quietly(ack)

    def _in_flight_match(self, key: ClientKey) -> _ClientTx | None:
        for tx in self._in_flight:
            request = tx.machine.request
            if "via" in request.headers and client_key(request) == key:
                tx.key = key
                self._client[key] = tx
                return tx
        return None

    def _on_request(self, request: Request, leg: Leg, source: Address) -> Awaitable[object] | None:
        self._received += 1
        method = request.method
        key = server_key(request)
        tx = self._server.get(key)
        if method == "ACK":
            if tx is not None and isinstance(tx.machine, ServerInviteTransaction):
                return self._feed_server(tx, AckReceived(request))
            # The ACK of a 2xx: a transaction of its own that no server
            # transaction matches (17.1.1.3); it only stops the 2xx (13.3.1.4).
            self._ack_for_2xx(request)
            return None
        if tx is not None:
            return self._feed_server(tx, RequestRetransmitted(request))
        machine = server_transaction(
            request, reliable=leg.reliable, config=self.config, send_trying=False
        )
        tx = _ServerTx(machine, leg, source, key)
        self._server[key] = tx
        return self._perform_server(tx, machine.start())

    def _ack_for_2xx(self, ack: Request) -> None:
        did = dialog_id_of_request(ack)
        if did is None:
            return
        pending = self._pending_2xx.pop((did, ack.cseq.seq), None)
        if pending is not None:
            pending.ack = ack
            self._settle(pending)
            if pending.timer is not None:
                pending.timer.cancel()
                pending.timer = None

    def _feed_server(self, tx: _ServerTx, event: Event) -> Awaitable[object] | None:
        return self._perform_server(tx, tx.machine.handle(event))

    def _perform_server(self, tx: _ServerTx, actions: list[Action]) -> Awaitable[object] | None:
        # Never waits: the only awaitable is what a request handler returned.
        pending: Awaitable[object] | None = None
        for action in actions:
            match action:
                case Transmit(message=message) | Retransmit(message=message):
                    assert isinstance(message, Response)  # a server transaction sends responses
                    self._send_response(message, tx.leg)
                case ArmTimer(timer=timer, delay=delay):
                    self._arm(tx, timer, delay)
                case CancelTimer(timer=timer):
                    self._cancel_timer(tx, timer)
                case PassToTU(message=message) if isinstance(message, Request):
                    if message.method == "ACK":
                        self._ack_for_2xx(message)
                    else:
                        pending = self._new_request(tx, message)
                case InformTU(reason=reason):
                    log.info("server transaction %r failed: %s", tx.machine, reason.value)
                case Terminate():
                    for key in (tx.key, *tx.extra_keys):
                        if self._server.get(key) is tx:
                            del self._server[key]
                    if tx.trying is not None:
                        tx.trying.cancel()
                    answered = tx.answered
                    if answered is not None:
                        # The ACK is kept for wait_ack while the transaction
                        # lives (RFC 6026: 64*T1 after the 2xx), not for the
                        # whole dialog: held calls travel light.
                        if answered.settled:
                            self._forget_answer(answered)
                        else:
                            answered.orphan = True
                case _:
                    log.debug("server transaction action %r ignored", action)
        return pending

    def _reject(self, tx: _ServerTx, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._rejected += 1
        self._respond(tx, status, headers=headers)

    def _new_request(self, tx: _ServerTx, request: Request) -> Awaitable[object] | None:
        method = request.method
        if method == "CANCEL":
            self._on_cancel(tx, request)
            return None
        did = dialog_id_of_request(request)
        dialog = self._dialogs.get(did) if did is not None else None
        if did is not None and dialog is None:
            # 12.2.2: a request with a To tag that matches no dialog.
            self._reject(tx, 481)
            return None
        if "require" in request.headers and self._refused_extensions(tx, request):
            return None
        if dialog is not None:
            if dialog.check_request(request) is not None:
                # 12.2.2: CSeq lower than the last one; 14.2 adds Retry-After.
                self._reject(tx, 500, [("Retry-After", str(secrets.randbelow(10) + 1))])
                return None
            tx.dialog = dialog
            if method == "INVITE" and self._our_invite_pending(dialog):
                # 14.2: an INVITE while one of ours is pending in this dialog is glare.
                self._reject(tx, 491)
                return None
            if method == "INVITE" and self._their_invite_pending(dialog, tx):
                # 14.2: a second INVITE before the first had its final response.
                self._reject(tx, 500, [("Retry-After", str(secrets.randbelow(10) + 1))])
                return None
            if method == "BYE":
                self._respond(tx, 200)
                self._terminate_pending(dialog)
                self._end_dialog(dialog)
                # What waits out Timer J answers retransmissions only.
                tx.dialog = None
                return None
        if method == "OPTIONS":
            self._respond(tx, 200, headers=self._capabilities())
            return None
        if method not in self.allow:
            if method in KNOWN_METHODS:
                self._reject(tx, 405, [("Allow", ", ".join(self.allow))])
            else:
                self._reject(tx, 501)
            return None
        if tx.dialog is not None:
            self._await_answer(tx.dialog, tx)
        handler = self._request_handler
        pending: Awaitable[object] | None = None
        if handler is None:
            try:
                self._in_send.send_nowait(request)
            except (anyio.WouldBlock, anyio.ClosedResourceError):
                self._reject(tx, 503, [("Retry-After", "5")])
                return None
        else:
            try:
                pending = handler(request)
            except Exception:
                self._handler_failed(tx)
                return None
            if pending is not None:
                pending = self._guarded(tx, pending)
        if method == "INVITE" and tx.machine.last_response is None:
            # 17.2.1: unless the TU answered at once (a handler), 100 Trying
            # goes out if it has not answered within 200 ms.
            tx.trying = self._timers.call_later(self.trying_delay, self._trying_due, tx)
        return pending

    def _refused_extensions(self, tx: _ServerTx, request: Request) -> bool:
        """Answer 420 when ``request`` requires an option tag we do not support (8.2.2.3)."""
        supported = {tag.lower() for tag in self.supported}
        unknown = [tag for tag in request.headers.values("require") if tag.lower() not in supported]
        if not unknown:
            return False
        # 8.2.2.3: the Unsupported header lists the option tags not understood.
        self._reject(tx, 420, [("Unsupported", ", ".join(dict.fromkeys(unknown)))])
        return True

    def _handler_failed(self, tx: _ServerTx) -> None:
        # A request handler raised: logged, and a request it left unanswered
        # gets 500 rather than ringing until the caller gives up.
        log.exception("request handler failed on %s", tx.machine.request.summary())
        last = tx.machine.last_response
        if last is None or last.status < 200:
            self._respond(tx, 500)

    async def _guarded(self, tx: _ServerTx, pending: Awaitable[object]) -> None:
        try:
            await pending
        except Exception:
            self._handler_failed(tx)

    def _our_invite_pending(self, dialog: Dialog) -> bool:
        for tx in self._client.values():
            machine = tx.machine
            if (
                isinstance(machine, ClientInviteTransaction)
                and machine.state in (ClientInviteState.CALLING, ClientInviteState.PROCEEDING)
                and _uac_dialog_id(machine.request) == dialog.id
            ):
                return True
        return False

    def _their_invite_pending(self, dialog: Dialog, this: _ServerTx) -> bool:
        for tx in self._server.values():
            machine = tx.machine
            if (
                tx is not this
                and tx.dialog is dialog
                and isinstance(machine, ServerInviteTransaction)
                and machine.state is ServerInviteState.PROCEEDING
            ):
                return True
        return False

    def _trying_due(self, tx: _ServerTx) -> None:
        tx.trying = None
        machine = tx.machine
        if machine.state is not ServerInviteState.PROCEEDING or machine.last_response is not None:
            return
        self._respond(tx, 100)

    def _capabilities(self) -> list[tuple[str, str]]:
        headers = [("Allow", ", ".join(self.allow))]
        if self.accept:
            headers.append(("Accept", ", ".join(self.accept)))
        if self.supported:
            headers.append(("Supported", ", ".join(self.supported)))
        return headers

    def _on_cancel(self, tx: _ServerTx, cancel: Request) -> None:
        target = self._server.get(cancel_target_key(cancel))
        if target is None or not isinstance(target.machine, ServerInviteTransaction):
            # 9.2: no matching transaction.
            self._respond(tx, 481)
            return
        self._respond(tx, 200)
        target.cancelled = True
        if target.machine.state is ServerInviteState.PROCEEDING:
            # 9.2: the INVITE is answered 487 unless it had its final response.
            self._request_terminated(target)

    def _request_terminated(self, tx: _ServerTx) -> None:
        # 487 for a request the caller gave up on (CANCEL, 9.2; BYE, 15.1.2).
        callback = tx.on_cancel  # taken first: a final response drops it
        self._respond(tx, 487)
        tx.ended_by_cancel = True
        if callback is not None:
            callback()

    def _await_answer(self, dialog: Dialog, tx: _ServerTx) -> None:
        # Filed until its final answer: a BYE ends what is still pending (15.1.2).
        ended = self._dialog_ended.get(dialog.id)
        if ended is not None:
            if ended.pending is None:
                ended.pending = []
            ended.pending.append(tx)

    def _terminate_pending(self, dialog: Dialog) -> None:
        # 15.1.2: "The UAS MUST still respond to any pending requests received
        # for that dialog. It is RECOMMENDED that a 487 ... be generated".
        ended = self._dialog_ended.get(dialog.id)
        if ended is None or not ended.pending:
            return
        for tx in list(ended.pending):  # each 487 takes it off the list
            if tx.machine.state in (
                ServerInviteState.PROCEEDING,
                ServerNonInviteState.TRYING,
                ServerNonInviteState.PROCEEDING,
            ):
                self._request_terminated(tx)

    def _respond(
        self,
        tx: _ServerTx,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        request = tx.machine.request
        extra = list(headers)
        if self.user_agent and status > 100:
            extra.append(("Server", self.user_agent))
        # A Contact goes into what creates a dialog and into 2xx answers to
        # target refresh requests inside one (12.1.1, RFC 3311 5.2); the
        # application's own Contact, if it gave one, stays.
        refresh = tx.dialog is not None and request.method in TARGET_REFRESH_METHODS
        creates = (request.method in DIALOG_CREATING_METHODS or refresh) and 101 <= status <= 299
        contact: NameAddr | None = None
        if creates and not any(canonical_name(name) == "contact" for name, _ in extra):
            if tx.dialog is not None and tx.dialog.local_contact is not None:
                contact = tx.dialog.local_contact
                contact_text = str(contact)
            else:
                contact, contact_text = self._contact_on(tx.leg)
            extra.append(("Contact", contact_text))
        # Every header goes in at once: the response keeps the views it
        # shares with the request (no header added after it is made).
        response = make_response(
            request,
            status,
            reason,
            to_tag=tx.local_tag if status > 100 and request.to.tag is None else None,
            headers=extra,
            body=body,
        )
        if creates:
            self._uas_dialog(tx, response, contact or response.contacts[0])
        if status >= 200:
            if tx.trying is not None:
                tx.trying.cancel()
            # No CANCEL can end it now; the callback (a call, its media)
            # must not live on with the transaction's 64*T1.
            tx.on_cancel = None
            if tx.dialog is not None:
                ended = self._dialog_ended.get(tx.dialog.id)
                if ended is not None and ended.pending and tx in ended.pending:
                    ended.pending.remove(tx)
        if status >= 200 and request.method == "INVITE":
            # An RFC 2543 client's ACK carries the To tag of this response;
            # filed under that key too, it finds the transaction (17.2.3).
            key = ack_key(request, response)
            if key != tx.key:
                tx.extra_keys += (key,)
                self._server[key] = tx
        # The machine refuses a response out of turn (TransactionUsageError)
        # before anything is sent or filed.
        actions = tx.machine.handle(response_from_tu(response))
        if creates and status >= 200 and request.method == "INVITE" and tx.dialog is not None:
            # 13.3.1.4: the 2xx goes again at T1, 2*T1 ... up to T2 until the
            # ACK (over a stream only the wait for the ACK); 64*T1 at most.
            # Filed before the 2xx leaves: its ACK may be back at once.
            now = anyio.current_time()
            pending = _Pending2xx(
                response,
                request,
                tx.dialog,
                tx.key,
                intervals=retransmit_intervals(RetransmitKind.INVITE_2XX_RESPONSE, self.config),
                next_at=math.inf if tx.leg.reliable else now,
                give_up_at=now + self.config.duration(Timer.H),
            )
            self._answered.setdefault(tx.dialog.id, {})[id(response)] = pending
            tx.answered = pending
            self._pending_2xx[(tx.dialog.id, request.cseq.seq)] = pending
            self._arm_2xx(tx, pending)
        self._perform_server(tx, actions)
        if status >= 200 and request.method != "INVITE":
            # What waits out Timer J needs no views (only a retransmitted
            # request would read them again).
            request.drop_views()
            response.drop_views()
        if (
            status >= 300
            and request.method == "INVITE"
            and tx.dialog is not None
            and tx.dialog.state is DialogState.EARLY
        ):
            # 12.3: a non-2xx final to the INVITE ends its early dialog (one
            # to another request inside it, an INFO or UPDATE, does not).
            self._end_dialog(tx.dialog)
        return response

    def _contact_on(self, leg: Leg) -> tuple[NameAddr, str]:
        # Our Contact on ``leg`` and its text, made once: every dialog made
        # there holds the same one (a NameAddr is immutable), one object
        # fewer per call for 64*T1 after it ends.
        uri = leg.contact_uri(self.user)
        known = self._contacts.get(uri)
        if known is None:
            if len(self._contacts) >= _CONTACTS_KEPT:
                self._contacts.clear()  # legs come and go, or advertise other addresses
            contact = NameAddr(uri)
            known = self._contacts[uri] = (contact, str(contact))
        return known

    def _uas_dialog(self, tx: _ServerTx, response: Response, contact: NameAddr) -> None:
        request = tx.machine.request
        if tx.dialog is not None:
            # A target refresh inside the dialog (our Contact may change), or
            # the 2xx after the 1xx that made the dialog early: confirmed now
            # (12.1.1), as the UAC's side is by the same 2xx.
            tx.dialog.local_contact = contact
            if response.status >= 200:
                tx.dialog.state = DialogState.CONFIRMED
            return
        try:
            dialog = Dialog.from_uas(
                request, tx.local_tag, confirmed=response.status >= 200, local_contact=contact
            )
        except SIPError as exc:
            log.info("no dialog for %s: %s", request.summary(), exc)
            return
        existing = self._dialogs.get(dialog.id)
        if existing is not None:
            if response.status >= 200:
                existing.state = dialog.state
            tx.dialog = existing
            return
        self._add_dialog(dialog)
        tx.dialog = dialog
        if response.status < 200:
            # An early dialog: the caller may end it with BYE (15), which
            # ends the INVITE still waiting for its answer.
            self._await_answer(dialog, tx)

    def _settle(self, pending: _Pending2xx) -> None:
        pending.settled = True
        # Kept while its transaction lives (wait_ack): travel light.
        pending.intervals = None
        pending.response.drop_views()
        pending.invite.drop_views()
        if pending.ack is not None:
            pending.ack.drop_views()
        if pending.acked is not None:
            pending.acked.set()
        if pending.orphan:
            self._forget_answer(pending)

    def _forget_answer(self, pending: _Pending2xx) -> None:
        did = pending.dialog.id
        answers = self._answered.get(did)
        key = id(pending.response)
        if answers is not None and answers.get(key) is pending:
            del answers[key]
            if not answers:
                del self._answered[did]

    def _arm_2xx(self, tx: _ServerTx, pending: _Pending2xx) -> None:
        assert pending.intervals is not None  # not settled: the schedule goes on
        pending.next_at += next(pending.intervals)
        pending.timer = self._timers.call_at(
            min(pending.next_at, pending.give_up_at), self._2xx_due, tx, pending
        )

    def _2xx_due(self, tx: _ServerTx, pending: _Pending2xx) -> Awaitable[object] | None:
        pending.timer = None
        if pending.next_at >= pending.give_up_at:
            # 13.3.1.4: no ACK after 64*T1: the dialog is confirmed and then ended.
            key = (pending.dialog.id, tx.machine.request.cseq.seq)
            if self._pending_2xx.get(key) is pending:
                del self._pending_2xx[key]
            self._settle(pending)
            log.info("no ACK for %s: ending the dialog", pending.response.summary())
            # The BYE waits for its answer: in a task, not in the timer task.
            self._spawn(lambda: self._bye(pending.dialog))
            return None
        self._arm_2xx(tx, pending)
        machine = tx.machine
        if not machine.terminated and machine.state is ServerInviteState.ACCEPTED:
            return self._feed_server(tx, response_from_tu(pending.response))
        self._send_response(pending.response, tx.leg)
        return None

    def _unburden(self, dialog: Dialog, answers: Iterable[_Pending2xx]) -> None:
        # The dialog is over, so wait_ack raises for its 2xx answers: their
        # INVITE transactions, which absorb retransmitted INVITEs until
        # 64*T1, need neither the ACK nor the dialog. Let go of them: what
        # lives that long, the garbage collector walks again and again. A
        # 2xx still waiting for its ACK keeps them; it settles later.
        for pending in answers:
            if not pending.settled:
                continue
            tx = self._server.get(pending.key)
            if tx is not None and tx.answered is pending:
                tx.answered = None
                if tx.dialog is dialog:
                    tx.dialog = None

    def _forget_ack(self, did: DialogId) -> None:
        self._acks.pop(did, None)

    # ----- dialogs --------------------------------------------------------------------

    def _add_dialog(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog
        self._dialog_ended[dialog.id] = _DialogEnd()

    def _end_dialog(self, dialog: Dialog) -> None:
        dialog.terminate()
        self._dialogs.pop(dialog.id, None)
        answers = self._answered.pop(dialog.id, None)
        if answers:
            self._unburden(dialog, answers.values())
        if dialog.id in self._acks:
            # The ACK stays for 64*T1 (Timer M): a late 2xx retransmission
            # still gets it, and no new dialog.
            did = dialog.id
            self._timers.call_coarse(self.config.duration(Timer.M), Endpoint._forget_ack, self, did)
        ended = self._dialog_ended.pop(dialog.id, None)
        if ended is not None:
            ended.fire()


def _uas_dialog_id(response: Response) -> DialogId | None:
    # The dialog of our own response: To tag local, From tag remote.
    to_tag = response.to.tag
    if to_tag is None:
        return None
    return DialogId(response.call_id, to_tag.lower(), (response.from_.tag or "").lower())


def _uac_dialog_id(request: Request) -> DialogId | None:
    # The dialog of our own in-dialog request: From tag local, To tag remote.
    to_tag = request.to.tag
    if to_tag is None:
        return None
    return DialogId(request.call_id, (request.from_.tag or "").lower(), to_tag.lower())


def _auth_headers(request: Request) -> list[tuple[str, str]]:
    # 22.1/13.2.2.4: the ACK for a 2xx repeats the INVITE's credentials.
    return [
        (name, request.headers.get_all(name)[0])
        for name in ("Authorization", "Proxy-Authorization")
        if name.lower() in request.headers
    ]


def _resend_copy(request: Request, dialogs: dict[DialogId, Dialog]) -> Request:
    """``request`` again as a new transaction: no Via, CSeq one higher (8.1.3.5).

    Inside a dialog the dialog's local sequence number follows (12.2.1.1).
    """
    headers = request.headers.copy()
    headers.remove("via")
    headers.remove("authorization")
    headers.remove("proxy-authorization")
    cseq = request.cseq
    headers.set("CSeq", str(CSeq(cseq.seq + 1, cseq.method)))
    did = _uac_dialog_id(request)
    dialog = dialogs.get(did) if did is not None else None
    if dialog is not None:
        dialog.local_seq = max(dialog.local_seq or 0, cseq.seq + 1)
    return Request(request.method, request.uri, headers, request.body)
