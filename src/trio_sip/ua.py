"""The UserAgent: trio-sip's front door (what Net::SIP::Simple is to Net::SIP).

One object owns a Dispatcher, an Endpoint and a background task that sorts
incoming requests; calls are async context managers with their own RTP
session::

    async with UserAgent("sip:alice@example.com", listen=["udp:0.0.0.0:0"],
                         credentials={"alice": "secret"}) as ua:
        await ua.register(registrar="sip:example.com", expires=600)
        async with ua.invite("sip:bob@example.com") as call:
            with anyio.move_on_after(30):      # ring timeout: CANCEL
                await call.wait_answered()
            await call.send_dtmf("123")

No timeouts as arguments and no callbacks: the caller's cancel scopes bound
every wait, and leaving a block ends what it opened (BYE, CANCEL,
un-REGISTER).
"""

from __future__ import annotations

import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .dispatcher import Dispatcher
from .endpoint import ClientRequest, Dialog, DialogId, Endpoint
from .errors import ParseError, SIPError
from .media import (
    DEFAULT_CODECS,
    MediaSession,
    PortRange,
    answer_offer,
    hold_offer,
    make_offer,
    read_answer,
    resume_offer,
)
from .media.dtmf import DTMF_INFO_TYPES, digit_of_info, info_body
from .media.offer_answer import NoCommonMedia
from .message import URI, NameAddr, Request, Response, new_call_id
from .message.sdp import Direction, RtpMap, SessionDescription
from .transport import multiplex

log = logging.getLogger("trio_sip.ua")

__all__ = ["Call", "CallFailed", "RegistrationFailed", "UserAgent"]

_SDP = ("Content-Type", "application/sdp")
_DTMF_RELAY = ("Content-Type", "application/dtmf-relay")


class CallFailed(SIPError):
    """A request of a call got a final error response (or none: 408/503).

    ``status`` and ``response`` are the final response's.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(response.start_line)
        self.response = response
        self.status = response.status


class RegistrationFailed(CallFailed):
    """REGISTER got a final error response (403, 404 ...) or none (408).

    A 423 (Interval Too Brief) is one only when its Min-Expires could not be
    met: otherwise the REGISTER is sent again at once with that interval.
    """


def _credentials(aor: URI, credentials: Mapping[str, str] | None) -> tuple[str, str] | None:
    if not credentials:
        return None
    # The AOR's own user is the account when it has one; else the only one given.
    if aor.user is not None and aor.user in credentials:
        return aor.user, credentials[aor.user]
    user, password = next(iter(credentials.items()))
    return user, password


def _sdp_of(message: Request | Response) -> SessionDescription | None:
    ctype = message.headers.first_value("content-type") or ""
    if not message.body or not ctype.lower().startswith("application/sdp"):
        return None
    return SessionDescription.parse(message.body)


class Call:
    """One call: its dialog, its RTP session and the requests inside it.

    A call made by :meth:`UserAgent.invite` waits with :meth:`wait_answered`;
    one received from :meth:`UserAgent.incoming_calls` is answered with
    :meth:`ring` and :meth:`answer` (or :meth:`reject`). Either side can
    :meth:`bye`, put the other on :meth:`hold`, send DTMF and in-dialog
    requests; a BYE from the peer ends the call and wakes :meth:`wait_ended`.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = (
        "_answered",
        "_client",
        "_ended",
        "_ended_callbacks",
        "_ended_event",
        "_holding",
        "_media_scope",
        "_owns_media",
        "dialog",
        "invite",
        "local_sdp",
        "media",
        "remote_sdp",
        "ua",
    )

    def __init__(self, ua: UserAgent, media: MediaSession) -> None:
        self.ua = ua
        #: The RTP session of the call.
        self.media = media
        #: The dialog, once there is one (answered, or a 18x with a To tag).
        self.dialog: Dialog | None = None
        #: The INVITE that started the call (ours or the peer's).
        self.invite: Request | None = None
        #: Our SDP offer or answer as last sent.
        self.local_sdp: SessionDescription | None = None
        #: The peer's SDP offer or answer as last received (its ``a=sendonly``
        #: when it puts us on hold, RFC 3264 section 8.4).
        self.remote_sdp: SessionDescription | None = None
        self._client: ClientRequest | None = None
        self._answered: Response | None = None
        self._ended = False
        # Made only when a task waits (wait_ended), called once at the end.
        self._ended_event: anyio.Event | None = None
        self._ended_callbacks: list[Callable[[], object]] | None = None
        # The scope of the task receiving our RTP, for a call that came in
        # where there is no multiplexer: it ends with the call.
        self._media_scope: anyio.CancelScope | None = None
        # A call that came in owns its session (no task or block closes it).
        self._owns_media = False
        # Whether we put the peer on hold (our offers then say sendonly).
        self._holding = False

    # ----- state ------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the call is over (BYE either way, rejected, failed)."""
        return self._ended

    async def wait_ended(self) -> None:
        """Wait until the call is over (BYE either way, missing ACK, UA closing)."""
        if self._ended:
            await anyio.lowlevel.checkpoint()
            return
        if self._ended_event is None:
            self._ended_event = anyio.Event()
        await self._ended_event.wait()

    def on_ended(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (synchronous, no arguments) once the call is over.

        What :meth:`wait_ended` waits for, for a caller with no task to wait
        in. Called at once if the call is over already. It runs in whatever
        ended the call (the Endpoint's handling of a BYE, the UA closing) and
        must not block.
        """
        if self._ended:
            callback()
            return
        if self._ended_callbacks is None:
            self._ended_callbacks = []
        self._ended_callbacks.append(callback)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._ended_event is not None:
            self._ended_event.set()
        if self._media_scope is not None:
            self._media_scope.cancel()
        # RFC 3261 section 15.1: with the BYE (ours or the peer's) we stop
        # sending and listening for media, so a call we made closes its
        # session now too, not only when its invite() block is left.
        self.media.close()
        if self._owns_media:
            self.ua._incoming.pop(self, None)
        callbacks, self._ended_callbacks = self._ended_callbacks, None
        for callback in callbacks or ():
            callback()

    def _follow(self, dialog: Dialog) -> None:
        # Filed under its dialog, so that the peer's re-INVITE and INFO find
        # it, until the Endpoint says the dialog is over (no task waits for it).
        self.dialog = dialog
        self.ua._calls[dialog.id] = self
        self.ua.endpoint.on_dialog_ended(dialog, self._dialog_over)

    def _dialog_over(self) -> None:
        if self.dialog is not None:
            self.ua._calls.pop(self.dialog.id, None)
        self._end()

    # ----- caller side ------------------------------------------------------------------

    async def wait_answered(self) -> Response:
        """Wait for the 2xx and return it; raise :class:`CallFailed` on any other final.

        No timeout argument: bound it with ``anyio.move_on_after``; leaving
        the scope early cancels the INVITE (a CANCEL goes out).
        """
        if self._answered is not None:
            await anyio.lowlevel.checkpoint()
            return self._answered
        client = self._client
        if client is None:
            raise RuntimeError("wait_answered() is for calls made with UserAgent.invite()")
        final = await client.wait_final()
        if not 200 <= final.status < 300 or not client.dialogs:
            self._end()
            raise CallFailed(final)
        self._answered = final
        answer = _sdp_of(final)
        if answer is not None:
            self.remote_sdp = answer
        if answer is not None and self.local_sdp is not None:
            params = read_answer(self.local_sdp, answer)
            if params is not None:
                self.media.apply(params)
        self._follow(client.dialogs[0])
        return final

    def events(self) -> AsyncIterator[Response]:
        """The provisional responses (180 Ringing, 183 Session Progress ...) as they come.

        The iteration ends with the final response (not included).
        """
        client = self._client
        if client is None:
            raise RuntimeError("events() is for calls made with UserAgent.invite()")
        return client.provisionals()

    async def cancel(self) -> None:
        """Cancel the INVITE while it rings (RFC 3261 section 9.1)."""
        if self._client is not None:
            await self._client.cancel()

    # ----- callee side ------------------------------------------------------------------

    async def ring(self, status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) to the INVITE."""
        assert self.invite is not None
        await self.ua.endpoint.respond(self.invite, status)

    async def answer(self, sdp: SessionDescription | bytes | None = None) -> Response:
        """Answer with 200 and an SDP answer (ours from the offer unless ``sdp`` is given).

        Returns the 200. Raises :class:`CallFailed` with 488 sent when no
        offered stream can be accepted.
        """
        response = self.answer_nowait(sdp)
        await self.ua.endpoint.wait_sent()
        return response

    def answer_nowait(self, sdp: SessionDescription | bytes | None = None) -> Response:
        """:meth:`answer` without waiting: for a call handler (:meth:`UserAgent.set_call_handler`)
        or any caller with no task to wait in."""
        invite = self.invite
        assert invite is not None
        endpoint = self.ua.endpoint
        body: bytes
        if sdp is not None:
            body = bytes(sdp)
            # The caller's own SDP is what we sent all the same: a re-INVITE
            # either way goes on from its o= line (RFC 3264 section 8), and
            # after a late offer it is the offer the ACK answers.
            with suppress(ParseError):
                self.remote_sdp = _sdp_of(invite)
                self.local_sdp = (
                    sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp)
                )
        else:
            offer = _sdp_of(invite)
            self.remote_sdp = offer
            if offer is None:
                # A late offer (RFC 3264 section 2): ours goes in the 200.
                self.local_sdp = self.ua._offer(self.media)
            else:
                try:
                    self.local_sdp, params = answer_offer(
                        offer,
                        self.ua.local_ip,
                        self.media.local_port,
                        codecs=self.ua.codecs,
                        require=True,
                    )
                except NoCommonMedia:
                    response = endpoint.respond_nowait(invite, 488)
                    self._end()
                    raise CallFailed(response) from None
                if params is not None:
                    self.media.apply(params)
            body = bytes(self.local_sdp)
        response = endpoint.respond_nowait(invite, 200, headers=[_SDP], body=body)
        self._answered = response
        dialog = endpoint.dialog_of(invite)
        if dialog is not None:
            self._follow(dialog)
            if self.remote_sdp is None and self.local_sdp is not None:
                self.ua._spawn(self._read_late_answer, response)
        return response

    async def _read_late_answer(self, response: Response) -> None:
        # RFC 3264 section 2 / RFC 3261 section 13.2.1: after a late offer
        # (ours in the 200) the answer comes in the ACK; it names where our
        # RTP goes, which symmetric RTP cannot learn until the peer sends.
        try:
            ack = await self.ua.endpoint.wait_ack(response)
        except SIPError:  # the dialog is over already: nothing to apply
            return
        answer = _sdp_of(ack) if ack is not None else None
        if answer is None or self.local_sdp is None:
            return
        self.remote_sdp = answer
        params = read_answer(self.local_sdp, answer)
        if params is not None:
            self.media.apply(params)

    async def reject(self, status: int = 486) -> Response:
        """Refuse the call (486 Busy Here by default); the call is then over."""
        response = self.reject_nowait(status)
        await self.ua.endpoint.wait_sent()
        return response

    def reject_nowait(self, status: int = 486) -> Response:
        """:meth:`reject` without waiting: for a call handler (:meth:`UserAgent.set_call_handler`)
        or any caller with no task to wait in."""
        assert self.invite is not None
        response = self.ua.endpoint.respond_nowait(self.invite, status)
        self._end()
        return response

    # ----- in the dialog ----------------------------------------------------------------

    def _require_dialog(self) -> Dialog:
        if self.dialog is None or self.ended:
            raise RuntimeError("the call has no live dialog")
        return self.dialog

    async def request(
        self, method: str, *, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
    ) -> Response:
        """Send ``method`` (INFO, REFER, UPDATE ...) inside the call; return the final.

        Raises :class:`CallFailed` on a final error response.
        """
        response = await self.ua.endpoint.request(
            self._require_dialog(), method, headers=headers, body=body
        )
        if response.status >= 300:
            raise CallFailed(response)
        return response

    async def bye(self) -> None:
        """Hang up (BYE); the call is over as soon as it leaves (section 15.1.1)."""
        if self.dialog is None or self.ended:
            return
        self._end()
        await self.ua.endpoint.request(self.dialog, "BYE")

    async def _reinvite(self, make: Callable[[SessionDescription], SessionDescription]) -> Response:
        # ``make`` builds the offer from our last SDP: again for the retry, as
        # the peer's crossing re-INVITE may have changed it meanwhile.
        assert self.local_sdp is not None  # hold() and unhold() checked
        offer = make(self.local_sdp)
        try:
            response = await self.request("INVITE", headers=[_SDP], body=bytes(offer))
        except CallFailed as failed:
            if failed.status != 491:
                raise
            # RFC 3261 section 14.1: our re-INVITE crossed the peer's (glare).
            # Once more after a random time, longer for the owner of the
            # Call-ID (the caller), so that the two do not cross again.
            low, high = (2.1, 4.0) if self._client is not None else (0.0, 2.0)
            await anyio.sleep(round(_jitter.uniform(low, high), 2))  # in units of 10 ms
            offer = make(self.local_sdp)
            response = await self.request("INVITE", headers=[_SDP], body=bytes(offer))
        self.local_sdp = offer
        answer = _sdp_of(response)
        if answer is not None:
            self.remote_sdp = answer
            params = read_answer(offer, answer)
            if params is not None:
                self.media.apply(params)
        return response

    async def hold(self) -> Response:
        """Put the peer on hold with a re-INVITE (RFC 3264 section 8.4).

        A 491 (the peer's re-INVITE crossed ours) is answered by trying once
        more after a random time (RFC 3261 section 14.1): up to 4 seconds.
        """
        if self.local_sdp is None:
            raise RuntimeError("no SDP was exchanged: nothing to hold")
        response = await self._reinvite(hold_offer)
        self._holding = True
        return response

    async def unhold(self) -> Response:
        """Take the call off hold: a re-INVITE back to sendrecv (after a 491, as :meth:`hold`)."""
        if self.local_sdp is None:
            raise RuntimeError("no SDP was exchanged: nothing to resume")
        response = await self._reinvite(resume_offer)
        self._holding = False
        return response

    async def _their_reinvite(self, request: Request) -> None:
        offer = _sdp_of(request)
        if offer is None:
            await self._offer_in_200(request)
            return
        try:
            answer, params = answer_offer(
                offer,
                self.ua.local_ip,
                self.media.local_port,
                codecs=self.ua.codecs,
                # While we hold the peer, its new offer does not take the call
                # off hold: only our unhold() does (RFC 3264 section 8.4).
                direction=self._hold_direction(),
                previous=self.local_sdp,
                # RFC 3261 section 14.2: a re-offer we cannot accept gets 488
                # and leaves the session as it was, rather than a 200 that
                # rejects every stream; one that disables every stream
                # itself (ports 0, RFC 3264 section 8.2) is answered.
                require=any(m.port != 0 for m in offer.media),
            )
        except NoCommonMedia:
            # Refused: the session goes on as it was (RFC 3264 section 8), and
            # remote_sdp stays the peer's description in force.
            await self.ua.endpoint.respond(request, 488)
            return
        self.remote_sdp = offer
        self.local_sdp = answer
        if params is not None:
            self.media.apply(params)
        await self.ua.endpoint.respond(request, 200, headers=[_SDP], body=bytes(answer))

    def _hold_direction(self) -> Direction:
        return Direction.SENDONLY if self._holding else Direction.SENDRECV

    async def _offer_in_200(self, request: Request) -> None:
        # RFC 3261 section 14.2: a re-INVITE without an offer gets ours in the
        # 200 (every codec we have, sendonly while we hold the peer) and the
        # answer comes in the ACK. Same o= line, next version (RFC 3264 section 8).
        fresh = self.ua._offer(self.media)
        media = tuple(m.with_direction(self._hold_direction()) for m in fresh.media)
        if self.local_sdp is not None:
            offer = replace(self.local_sdp, media=media, connection=fresh.connection)
            offer = offer.with_direction(None).with_next_version()
        else:
            offer = replace(fresh, media=media)
        self.local_sdp = offer
        response = await self.ua.endpoint.respond(request, 200, headers=[_SDP], body=bytes(offer))
        self.ua._spawn(self._read_late_answer, response)

    # ----- media ------------------------------------------------------------------------

    async def send_dtmf(self, digits: str, *, inband: bool = False, info: bool = False) -> None:
        """Send DTMF ``digits`` over RTP: RFC 4733 events, or (``inband``) dual tones.

        Events need a telephone-event payload type in the negotiated SDP;
        without one the digits go in-band anyway (in PCMU or PCMA). With
        ``info`` they go as SIP INFO requests instead, one per digit with an
        ``application/dtmf-relay`` body, each after the last one's 200
        (:class:`CallFailed` if one is refused); the media statistics do
        not count those. The peer's digits in INFO come from :meth:`dtmf`
        with those of RTP.
        """
        if not info:
            await self.media.send_dtmf(digits, inband=inband)
            return
        if inband:
            raise ValueError("DTMF goes either in-band or in SIP INFO, not both")
        bodies = [info_body(digit) for digit in digits]  # refuse a bad digit first
        for body in bodies:
            await self.request("INFO", headers=[_DTMF_RELAY], body=body)

    def dtmf(self) -> AsyncIterator[str]:
        """The DTMF digits the peer sends, as they arrive (RTP events, tones, SIP INFO)."""
        return self.media.dtmf()


class UserAgent:
    """A SIP user agent: register, call, answer, ping and message.

    ``aor`` is our address-of-record (From of our requests). ``listen``
    are the legs (``"udp:0.0.0.0:0"``); ``proxy`` an outgoing proxy
    (``"host:port"``) that takes every request; ``credentials`` maps a user
    name to its password for digest challenges (401/407). ``media_host``
    is the IP our RTP binds to (default: the first leg's address);
    ``rtp_ports`` the range its ports come from (default: any the system
    gives); ``inband_dtmf`` turns on the detection of DTMF tones in the
    received audio of every call (Goertzel, for peers that do not send RFC
    4733 events; it costs CPU per packet). ``codecs`` are the audio codecs we
    offer and accept, in our order of preference (PCMU and PCMA).
    ``dispatcher``: a Dispatcher not entered yet, to use instead of one made
    from ``listen``, ``proxy`` and ``t1`` (e.g. one that logs every message).
    ``call_ids`` makes the Call-IDs of our calls, registrations and other
    requests (see :class:`~trio_sip.endpoint.Endpoint`).
    """

    def __init__(
        self,
        aor: str | URI,
        *,
        listen: Sequence[str] = ("udp:0.0.0.0:0",),
        proxy: str | None = None,
        credentials: Mapping[str, str] | None = None,
        media_host: str | None = None,
        t1: float = 0.5,
        dispatcher: Dispatcher | None = None,
        rtp_ports: PortRange | None = None,
        inband_dtmf: bool = False,
        codecs: Sequence[RtpMap] = DEFAULT_CODECS,
        call_ids: Callable[[], str] = new_call_id,
    ) -> None:
        self.aor = URI.parse(aor) if isinstance(aor, str) else aor
        self.dispatcher = (
            dispatcher
            if dispatcher is not None
            else Dispatcher(listen, outgoing_proxy=proxy, t1=t1)
        )
        self.endpoint = Endpoint(
            self.dispatcher,
            user=self.aor.user,
            credentials=_credentials(self.aor, credentials),
            call_ids=call_ids,
        )
        self._media_host = media_host
        self._rtp_ports = rtp_ports
        self._inband_dtmf = inband_dtmf
        #: The codecs we offer and accept, in our order of preference.
        self.codecs: tuple[RtpMap, ...] = tuple(codecs)
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: Any = None
        self._calls: dict[DialogId, Call] = {}
        send, receive = anyio.create_memory_object_stream[Call](16)
        self._call_send: MemoryObjectSendStream[Call] = send
        self._call_receive: MemoryObjectReceiveStream[Call] = receive
        msend, mreceive = anyio.create_memory_object_stream[Request](64)
        self._message_send: MemoryObjectSendStream[Request] = msend
        self._message_receive: MemoryObjectReceiveStream[Request] = mreceive
        self._registration: anyio.CancelScope | None = None
        # Receives the RTP of every call (None: a task per call receives).
        self._multiplexer: multiplex.DatagramMultiplexer | None = None
        # Incoming calls not over yet, whose sessions close with them.
        self._incoming: dict[Call, None] = {}
        # Set by set_call_handler: incoming calls go there instead of the queue.
        self._call_handler: Callable[[Call], object] | None = None
        self._registered_at: URI | None = None
        self._contact: URI | None = None
        # Per registrar: the Call-ID of our REGISTERs and the last CSeq
        # number sent with it (RFC 3261 section 10.2).
        self._register_ids: dict[str, tuple[str, int]] = {}

    # ----- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await stack.enter_async_context(self.dispatcher)
            await stack.enter_async_context(self.endpoint)
            if multiplex.SUPPORTED:
                self._multiplexer = multiplex.DatagramMultiplexer()
                stack.callback(self._multiplexer.close)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            if self._multiplexer is not None:
                self._tg.start_soon(self._multiplexer.serve)
            self.endpoint.set_request_handler(self._on_request)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._registered_at is not None:
            with self.endpoint.close_wait():
                await self.unregister()
        assert self._tg is not None
        self.endpoint.set_request_handler(None)
        self._tg.cancel_scope.cancel()
        # Leaving ends every call (BYE from the Endpoint as it closes).
        for call in [*self._calls.values(), *self._incoming]:
            call._end()
        self._calls.clear()
        for stream in (
            self._call_send,
            self._call_receive,
            self._message_send,
            self._message_receive,
        ):
            stream.close()
        stack, self._stack = self._stack, None
        result: bool | None = await stack.__aexit__(exc_type, exc, tb)
        return result

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._tg is None:
            raise RuntimeError("the UserAgent is not running: use 'async with UserAgent(...)'")
        self._tg.start_soon(fn, *args)

    @property
    def local_ip(self) -> str:
        """The IP address our SDP names (``media_host``, else the first leg's)."""
        if self._media_host is not None:
            return self._media_host
        return self.dispatcher.legs[0].sent_by().rsplit(":", 1)[0].strip("[]")

    def _media_session(self) -> MediaSession:
        return MediaSession(
            self.local_ip,
            port_range=self._rtp_ports,
            inband_dtmf=self._inband_dtmf,
            multiplexer=self._multiplexer,
        )

    def _offer(self, media: MediaSession) -> SessionDescription:
        return make_offer(self.local_ip, media.local_port, codecs=self.codecs)

    def contact(self) -> URI:
        """The URI that reaches this UA on its first leg."""
        return self.dispatcher.legs[0].contact_uri(self.aor.user)

    # ----- incoming requests ----------------------------------------------------------------

    def _on_request(self, request: Request) -> Awaitable[None] | None:
        # The Endpoint's request handler, called as the request arrives (no
        # task switch): a new call and the simple answers are done here; a
        # re-INVITE, which may need a task, comes back as an awaitable.
        dialog = self.endpoint.dialog_of(request)
        call = self._calls.get(dialog.id) if dialog is not None else None
        method = request.method
        try:
            if method == "INVITE" and call is not None:
                return self._answer_reinvite(call, request)
            if method == "INVITE" and request.to.tag is None:
                if self._multiplexer is not None:
                    # No task per call: the multiplexer's receives its RTP.
                    self._new_incoming_call(request)
                else:
                    self._spawn(self._serve_incoming_call, request)
            elif method == "MESSAGE":
                self.endpoint.respond_nowait(request, 200)
                try:
                    self._message_send.send_nowait(request)
                except anyio.WouldBlock:
                    log.warning("no one reads messages: dropping %s", request.summary())
            elif call is not None:
                if method == "INFO" and request.content_type in DTMF_INFO_TYPES:
                    self._info_dtmf(call, request)
                else:
                    # INFO and the like in a call: accepted (RFC 6086 section 4.2.2).
                    self.endpoint.respond_nowait(request, 200)
            else:
                self.endpoint.respond_nowait(request, 481 if request.to.tag else 405)
        except SIPError:
            log.exception("could not answer %s", request.summary())
        return None

    def _info_dtmf(self, call: Call, request: Request) -> None:
        # A digit in a SIP INFO (application/dtmf-relay or application/dtmf):
        # delivered with the digits of RTP events, to on_dtmf() or dtmf().
        assert request.content_type is not None
        try:
            digit = digit_of_info(request.content_type, request.body)
        except ValueError as exc:
            self.endpoint.respond_nowait(request, 400, reason=f"Bad DTMF body: {exc}"[:80])
            return
        self.endpoint.respond_nowait(request, 200)
        call.media.receive_digit(digit)

    async def _answer_reinvite(self, call: Call, request: Request) -> None:
        try:
            await call._their_reinvite(request)
        except SIPError:
            log.exception("could not answer %s", request.summary())

    def _new_incoming_call(self, invite: Request) -> Call | None:
        """A bound session and a Call for ``invite``, handed to :meth:`incoming_calls`.

        None when the INVITE was refused: 503 with no RTP port (RFC 3261
        section 21.5.4), 486 when nobody takes calls; the UA goes on serving
        either way, and the session is closed. With a multiplexer the call
        owns its session, which closes when the call ends.
        """
        media = self._media_session()
        try:
            media.bind_nowait()
        except (SIPError, OSError) as exc:
            log.warning("no media session for %s: %s", invite.summary(), exc)
            media.close()
            self.endpoint.respond_nowait(invite, 503)
            return None
        call = Call(self, media)
        call.invite = invite
        if self._multiplexer is not None:
            call._owns_media = True
            self._incoming[call] = None
        # Not answered after all: the call is over with the 487.
        self.endpoint.on_cancelled(invite, call._end)
        handler = self._call_handler
        if handler is not None:
            try:
                handler(call)
            except Exception:
                log.exception("call handler failed on %s", invite.summary())
                if call._answered is not None:
                    return call  # answered before it failed: the call goes on
                # The call is over, and the caller is told (unless the
                # handler refused it before it failed).
                call._end()
                media.close()
                with suppress(SIPError):
                    self.endpoint.respond_nowait(invite, 500)
                return None
            return call
        try:
            self._call_send.send_nowait(call)
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            call._end()
            media.close()
            self.endpoint.respond_nowait(invite, 486)
            return None
        return call

    async def _serve_incoming_call(self, invite: Request) -> None:
        # Without a multiplexer, one task per incoming call: it receives the
        # call's RTP until the call ends (the session's own receive task
        # would be a second one).
        call = self._new_incoming_call(invite)
        if call is None:
            return
        media = call.media
        try:
            with anyio.CancelScope() as scope:
                call._media_scope = scope
                if not call.ended:
                    await media.serve()
                    # The session was closed under us: the call goes on.
                    await call.wait_ended()
        finally:
            await media.aclose()

    def set_call_handler(self, handler: Callable[[Call], object] | None) -> None:
        """Give each incoming call to ``handler`` at once, instead of to :meth:`incoming_calls`.

        ``handler(call)`` runs as the INVITE arrives, with no queue and no
        task switch (a UA answering thousands of calls a second): it answers
        with :meth:`Call.answer_nowait`, refuses with :meth:`Call.reject_nowait`,
        or keeps the call to answer later (the Endpoint sends 100 Trying
        after 200 ms meanwhile). It must not block; work that waits goes
        into a task of its own. When it raises before answering, the call
        is over and the INVITE gets 500 (unless refused already); the
        error is logged. None goes back to :meth:`incoming_calls`.
        """
        self._call_handler = handler

    def incoming_calls(self) -> MemoryObjectReceiveStream[Call]:
        """The calls coming in, for :meth:`Call.ring`, :meth:`Call.answer`, :meth:`Call.reject`.

        Iterate it with ``async for``; the iteration ends when the UA closes.
        A call nobody takes within the queue (16 calls) gets 486.
        """
        return self._call_receive

    def messages(self) -> MemoryObjectReceiveStream[Request]:
        """MESSAGE requests received (RFC 3428), already answered with 200."""
        return self._message_receive

    # ----- calls ------------------------------------------------------------------------

    @asynccontextmanager
    async def invite(
        self, uri: str | URI, *, sdp: SessionDescription | None = None
    ) -> AsyncIterator[Call]:
        """Call ``uri``; the block gets the :class:`Call` at once (it rings meanwhile).

        Leaving the block hangs up (BYE) an answered call and cancels one
        still ringing. ``sdp`` replaces our offer (default: one audio
        stream of the call's RTP session).
        """
        try:
            async with self._media_session() as media:
                call = Call(self, media)
                call.local_sdp = sdp or self._offer(media)
                client = await self.endpoint.new_request(
                    "INVITE",
                    URI.parse(uri) if isinstance(uri, str) else uri,
                    from_=NameAddr(self.aor),
                    headers=[_SDP],
                    body=bytes(call.local_sdp),
                )
                call._client = client
                call.invite = client.request
                try:
                    yield call
                finally:
                    with anyio.CancelScope(shield=True):
                        final = client.final
                        if call._answered is None and final is not None and final.is_success:
                            # The 2xx came but nobody took it with
                            # wait_answered() (events() ran to its end): the
                            # call is answered all the same, and hung up
                            # below. One the Endpoint ended already (a 2xx
                            # that crossed our CANCEL) ends the call at once.
                            call._answered = final
                            if client.dialogs:
                                call._follow(client.dialogs[0])
                        if call._answered is not None:
                            if call.dialog is None and client.dialogs:
                                call.dialog = client.dialogs[0]
                            with self.endpoint.close_wait():
                                await call.bye()
                        elif not client.done:
                            await client.cancel()
                            # Wait for the 487 (and let its ACK go) before the
                            # UA may close: section 9.1, the INVITE still ends
                            # with a final response.
                            with self.endpoint.close_wait():
                                await client.wait_final()
                        call._end()
        except BaseExceptionGroup as group:
            # The session's task group wrapped what the block raised (a
            # CallFailed, a Cancelled): that group is our business, the
            # exception is the caller's.
            if len(group.exceptions) != 1:
                raise
            inner = group.exceptions[0]
            raise inner from inner.__cause__

    # ----- out of dialog ----------------------------------------------------------------

    async def options(self, uri: str | URI) -> Response:
        """Send OPTIONS to ``uri`` (a SIP ping) and return the final response."""
        return await self.endpoint.request(uri, "OPTIONS", from_=NameAddr(self.aor))

    async def message(
        self, uri: str | URI, text: str, *, content_type: str = "text/plain;charset=utf-8"
    ) -> Response:
        """Send ``text`` as a MESSAGE (RFC 3428); raise :class:`CallFailed` unless 2xx."""
        response = await self.endpoint.request(
            uri,
            "MESSAGE",
            from_=NameAddr(self.aor),
            headers=[("Content-Type", content_type)],
            body=text.encode(),
        )
        if response.status >= 300:
            raise CallFailed(response)
        return response

    # ----- registration -------------------------------------------------------------------

    async def _register_once(self, registrar: URI, expires: int) -> Response:
        contact = self._contact if self._contact is not None else self.contact()
        # Section 10.2: every REGISTER to one registrar has the same Call-ID
        # and a CSeq one higher than the last, so that the registrar can
        # order them (section 10.3 step 7 ignores one that is not newer).
        key = str(registrar)
        new_call_id = self.endpoint.new_call_id
        call_id, last = self._register_ids.get(key) or (new_call_id(), secrets.randbelow(2**16))
        if last + 1 >= _CSEQ_LIMIT:
            call_id, last = new_call_id(), 0
        # Taken before sending: a REGISTER cancelled on its way still used it.
        self._register_ids[key] = (call_id, last + 1)
        client = await self.endpoint.new_request(
            "REGISTER",
            registrar,
            from_=NameAddr(self.aor),
            to=NameAddr(self.aor),
            # Section 10.2.1: the binding is our Contact (the Endpoint adds
            # one only where a dialog starts).
            headers=[("Contact", f"<{contact}>"), ("Expires", str(expires))],
            call_id=call_id,
            cseq=last + 1,
        )
        try:
            return await client.wait_final()
        finally:
            # An auth retry went out one higher (section 22.2).
            self._register_ids[key] = (call_id, client.request.cseq.seq)

    async def _register_at(self, registrar: URI, expires: int) -> tuple[Response, int]:
        """REGISTER, and again with Min-Expires after a 423 (section 10.2.8).

        Returns the final response and the interval it was asked for with.
        """
        response = await self._register_once(registrar, expires)
        if response.status == 423 and expires > 0:
            try:
                least = response.min_expires
            except ParseError:
                least = None
            if least is not None and least > expires:
                expires = least
                response = await self._register_once(registrar, expires)
        return response, expires

    def _granted(self, response: Response, asked: int) -> int:
        # RFC 3261 section 10.2.4: the registrar may shorten the time; our
        # Contact's expires parameter (else Expires) in the 200 says how long.
        # The 200 lists every binding of the AOR: ours is the one equal to
        # our Contact by the rules of section 19.1.4 (the port included, as
        # another device of the user may be on the same host).
        ours = self._contact if self._contact is not None else self.contact()
        for contact in response.contacts:
            if contact.uri == ours:
                value = contact.params.get("expires")
                if value is not None and value.isdigit():
                    return int(value)
        header = response.expires
        return header if header is not None else asked

    async def register(
        self,
        registrar: str | URI | None = None,
        *,
        expires: int = 600,
        contact: str | URI | None = None,
        refresh: bool = True,
    ) -> Response:
        """Register our Contact (or ``contact``) at ``registrar`` (default: the AOR's domain).

        Returns the 200; raises :class:`RegistrationFailed` otherwise. A
        423 (Interval Too Brief) is answered by registering again with the
        registrar's Min-Expires, which the refreshes then keep.

        The binding is then refreshed in the background before it expires
        (halfway, at most 30 seconds early) until :meth:`unregister` or the
        UA closes (which unregisters). After a failed refresh it is tried
        again with back-off: waits that double from 1 to 300 seconds, each
        drawn between half and all of that (so that the UAs of a registrar
        that was down come back spread out), and never shorter than the
        registrar's Retry-After. With ``refresh=False`` it is one REGISTER:
        the binding is left to expire.

        Every REGISTER to one registrar has the same Call-ID and the next
        CSeq number (RFC 3261 section 10.2), so that it can order them.
        """
        target = (URI.parse(registrar) if isinstance(registrar, str) else registrar) or URI(
            "sip", self.aor.host, port=self.aor.port
        )
        if contact is not None:
            self._contact = URI.parse(contact) if isinstance(contact, str) else contact
        response, expires = await self._register_at(target, expires)
        if response.status >= 300:
            raise RegistrationFailed(response)
        if not refresh:
            return response
        if self._registration is not None:
            self._registration.cancel()
        self._registered_at = target
        scope = anyio.CancelScope()
        self._registration = scope
        self._spawn(self._keep_registered, scope, target, expires, self._granted(response, expires))
        return response

    async def _keep_registered(
        self, scope: anyio.CancelScope, target: URI, expires: int, granted: int
    ) -> None:
        with scope:
            failures = 0
            wait = _refresh_delay(granted)
            while True:
                await anyio.sleep(wait)
                response: Response | None
                try:
                    response, expires = await self._register_at(target, expires)
                except SIPError as exc:
                    log.warning("REGISTER refresh failed: %s", exc)
                    response = None
                if response is not None and response.status < 300:
                    failures = 0
                    wait = _refresh_delay(self._granted(response, expires))
                else:
                    failures += 1
                    wait = _retry_delay(failures, _retry_after(response))
                    log.warning(
                        "REGISTER refresh at %s failed (%s); again in %.0f s",
                        target,
                        response.start_line if response is not None else "no answer",
                        wait,
                    )

    async def unregister(self) -> Response | None:
        """Remove our binding (REGISTER with Expires 0) and stop refreshing it."""
        if self._registration is not None:
            self._registration.cancel()
            self._registration = None
        target, self._registered_at = self._registered_at, None
        if target is None:
            await anyio.lowlevel.checkpoint()
            return None
        return await self._register_once(target, 0)


def _refresh_delay(granted: int) -> float:
    """When to refresh a binding granted for ``granted`` seconds."""
    return max(1.0, granted - min(granted / 2, 30.0)) if granted > 0 else math.inf


#: CSeq numbers stay below 2**31 (RFC 3261 section 8.1.1.5).
_CSEQ_LIMIT = 2**31
#: The highest ceiling of the back-off between two REGISTERs after failures.
_BACKOFF_CAP = 300.0
#: The longest Retry-After a registration obeys: a registrar's answer may
#: delay it, not stop it for days.
_RETRY_AFTER_CAP = 3600
#: Draws the random part of each back-off and of the wait after a 491 (the
#: tests put a fixed one here).
_jitter = random.Random()


def _retry_delay(failures: int, retry_after: int | None = None) -> float:
    """Seconds to wait before registering again after ``failures`` failures in a row.

    The ceiling doubles from 1 second to 300 (1, 2, 4 ... 256, 300), and
    each wait is drawn between half the ceiling and all of it, as RFC 5626
    section 4.5 does for flow recovery: the UAs of a registrar that was down
    then come back spread out, not in step. A ``retry_after`` from the
    failure response (RFC 3261 section 20.33, up to an hour) is waited out
    in full.
    """
    ceiling = min(_BACKOFF_CAP, 2.0 ** min(max(failures, 1) - 1, 32))
    wait = ceiling * _jitter.uniform(0.5, 1.0)
    if retry_after is not None:
        wait = max(wait, float(min(retry_after, _RETRY_AFTER_CAP)))
    return wait


def _retry_after(response: Response | None) -> int | None:
    # A failure's Retry-After; one that cannot be read is as good as none.
    if response is None:
        return None
    try:
        return response.retry_after
    except ParseError:
        return None
