"""A :class:`MediaSession`: one RTP stream (RFC 3550) over UDP on anyio.

The session binds an even RTP port and holds the next odd port for RTCP
(RFC 3550 section 11: "RTP SHOULD use an even destination port number and the
corresponding RTCP stream SHOULD use the next higher (odd) port number"). RTCP
itself is not sent; the port is reserved so that a peer following that rule
does not reach another program.

Sending is paced by the clock: frame *n* goes out at ``origin + n * ptime``, a
deadline computed from the frame number rather than by adding sleeps, so the
stream never drifts however long it runs; its RTP timestamp is the origin plus
``n`` frames of samples. A sender that pauses skips the missed slots (the
timestamp jumps by the silence, and the marker bit flags the new talkspurt,
RFC 3551 section 4.1).

Receiving runs in one task that reads the socket and never waits on a consumer
(or, given a :class:`~trio_sip.transport.DatagramMultiplexer`, in
the multiplexer's task, shared by every session of a UserAgent):
audio packets go to :meth:`MediaSession.receive`, RFC 4733 events and in-band
tones become digits on :meth:`MediaSession.dtmf`. A consumer too slow for the
stream loses packets (counted in ``statistics().dropped``) instead of delaying it.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

import anyio

from ..errors import ParseError, TransportError
from ..message.sdp import STATIC_PAYLOAD_TYPES, Direction, RtpMap
from ..transport.leg import Address, Leg
from ..transport.multiplex import DatagramMultiplexer
from ..transport.udp import DRAIN_BATCH, MAX_DATAGRAM, UDPLeg
from . import g711
from .dtmf import DtmfDetector, EventReceiver, dtmf_tone, event_of_digit, event_payloads
from .offer_answer import MediaParams
from .rtp import ReceptionStats, RtpPacket, RtpSender

__all__ = ["MediaSession", "MediaStatistics", "PortRange"]

T = TypeVar("T")

# How many ports to try when the system picks them (port range None): an odd
# port, or a busy next port, costs one attempt.
_SYSTEM_PORT_ATTEMPTS = 64


@dataclass(frozen=True, slots=True)
class PortRange:
    """The ports media may use: ``low`` to ``high`` inclusive.

    RTP takes an even port of the range and RTCP the odd one after it, so the
    range holds ``(high - low + 1) // 2`` sessions at most.
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= 65535:
            raise ValueError(f"bad port range {self.low}-{self.high}")
        if not self.rtp_ports():
            raise ValueError(f"port range {self.low}-{self.high} has no even/odd port pair")

    def rtp_ports(self) -> range:
        """The even ports whose next port is also in the range."""
        return range(self.low + self.low % 2, self.high, 2)


@dataclass(frozen=True, slots=True)
class MediaStatistics:
    """Counters of a :class:`MediaSession` (RFC 3550 section 6.4 for loss and jitter)."""

    local: Address
    remote: Address | None
    ssrc: int
    packets_sent: int
    octets_sent: int
    send_errors: int
    skipped_slots: int
    remote_ssrc: int | None
    packets_received: int
    octets_received: int
    packets_expected: int
    packets_lost: int
    duplicates: int
    jitter: float
    malformed: int
    dropped: int
    dtmf_sent: int
    dtmf_received: int


class _Queue(Generic[T]):
    """A bounded queue from the receive task to one or more consumers.

    :meth:`put` never waits: a full queue refuses the item, since the socket
    must be drained at once (the asyncio backend drops all but the newest 100
    unread datagrams). After :meth:`close`, consumers still get what is queued,
    then the iteration ends, so a recorder keeps the last packets of a call.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = ("_closed", "_items", "_size", "_wakeup")

    def __init__(self, size: int) -> None:
        # Made at the first item: an empty deque costs 600 bytes, and most
        # calls of a busy answering UA never queue a digit.
        self._items: deque[T] | None = None
        self._size = size
        self._closed = False
        self._wakeup: anyio.Event | None = None

    def put(self, item: T) -> bool:
        """Queue ``item``; False if the queue is full or closed."""
        if self._closed:
            return False
        items = self._items
        if items is None:
            items = self._items = deque()
        if len(items) >= self._size:
            return False
        items.append(item)
        self._wake()
        return True

    def close(self) -> None:
        """End the iteration once the queued items are taken."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        await anyio.lowlevel.checkpoint()
        items = self._items
        if not items:  # another consumer took it during the checkpoint
            return await self.__anext__()
        return items.popleft()


class MediaSession:
    """One RTP audio stream on anyio: paced send, received packets, DTMF both ways.

    Use it as an async context manager; leaving it cancels the receive task and
    closes both sockets::

        async with MediaSession("127.0.0.1") as media:
            offer = make_offer("127.0.0.1", media.local_port)
            ...
            media.apply(read_answer(offer, answer))
            await media.send_dtmf("123#")

    ``host`` is the local IP address to bind. Ports come from ``port_range``,
    or from the system when it is None. ``codec`` is what :meth:`send`
    sends (PCMU or PCMA for the helpers that encode); ``telephone_event`` the
    RFC 4733 payload type (None: DTMF only in-band). With ``symmetric`` (the
    default) RTP goes to where the peer's packets come from, which crosses NATs
    (RFC 4961); the negotiated ``remote`` is only used until the first packet.
    ``inband_dtmf`` turns on Goertzel detection of received PCMU/PCMA audio.
    ``queue_size`` bounds the packets and digits waiting for a consumer.
    ``multiplexer``: receive in that multiplexer's task instead of a task of
    the session's own (:meth:`bind` registers the RTP socket there,
    :meth:`close` takes it out).
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = (
        "_audio",
        "_base",
        "_detector",
        "_digit_callback",
        "_digits",
        "_dropped",
        "_dtmf_received",
        "_dtmf_sent",
        "_events",
        "_malformed",
        "_multiplexer",
        "_octets_received",
        "_origin",
        "_pace",
        "_reception",
        "_rtcp",
        "_rtp",
        "_send_errors",
        "_sender",
        "_skipped",
        "_slot",
        "_stamp",
        "_task_group",
        "_unsent",
        "codec",
        "direction",
        "host",
        "port_range",
        "ptime",
        "remote",
        "symmetric",
        "telephone_event",
    )

    def __init__(
        self,
        host: str = "0.0.0.0",
        *,
        port_range: PortRange | None = None,
        remote: Address | None = None,
        codec: RtpMap = STATIC_PAYLOAD_TYPES[0],
        telephone_event: int | None = 101,
        ptime: int = 20,
        direction: Direction = Direction.SENDRECV,
        symmetric: bool = True,
        inband_dtmf: bool = False,
        queue_size: int = 64,
        multiplexer: DatagramMultiplexer | None = None,
    ) -> None:
        if ptime <= 0:
            raise ValueError("ptime must be positive")
        self.host = host
        self.port_range = port_range
        #: Where RTP is sent; None until known (nothing is sent meanwhile).
        self.remote: Address | None = remote
        self.codec = codec
        self.telephone_event = telephone_event
        self.ptime = ptime
        #: Our direction: :meth:`send` transmits only when it ``sends``.
        self.direction = direction
        self.symmetric = symmetric
        self._rtp: UDPLeg | None = None
        self._rtcp: UDPLeg | None = None
        self._multiplexer = multiplexer
        self._task_group: anyio.abc.TaskGroup | None = None
        self._sender = RtpSender()
        self._reception = ReceptionStats(codec.clock_rate)
        self._events = EventReceiver()
        self._detector = DtmfDetector(sample_rate=codec.clock_rate) if inband_dtmf else None
        # Made by the first send: a UA answering thousands of silent calls never does.
        self._pace: anyio.Lock | None = None
        self._origin: float | None = None
        self._slot = 0
        # Sampling position of slot 0: where the timestamp clock restarts from.
        self._base = 0
        # Sampling position of the slot _next_slot gave out last.
        self._stamp = 0
        self._send_errors = 0
        self._skipped = 0
        # True when a slot went by unsent (on hold, no remote yet): the next
        # packet sent starts a talkspurt.
        self._unsent = False
        self._malformed = 0
        self._dropped = 0
        self._octets_received = 0
        self._dtmf_sent = 0
        self._dtmf_received = 0
        self._audio: _Queue[RtpPacket] = _Queue(queue_size)
        self._digits: _Queue[str] = _Queue(queue_size)
        self._digit_callback: Callable[[str], object] | None = None

    # --- lifetime -----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.bind()
        if self._multiplexer is not None:
            return self
        try:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self.serve)
        except BaseException:
            await self._close_sockets()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                return await self._task_group.__aexit__(exc_type, exc, tb)
            return None
        finally:
            self._task_group = None
            await self._close_sockets()

    async def aclose(self) -> None:
        """Close the sockets and end the iterators; the session cannot be reused."""
        await self._close_sockets()

    def close(self) -> None:
        """:meth:`aclose` without waiting, for a callback (the end of a call), from a task.

        What has arrived and not been read yet is taken first: the last
        packets the peer sent before its BYE may be queued on the socket when
        the BYE is handled, and they belong to the call.
        """
        if self._rtp is not None:
            self._drain(self._rtp)
        for leg in (self._rtp, self._rtcp):
            if leg is not None:
                sock = leg.raw_socket
                if sock is not None and self._multiplexer is not None:
                    self._multiplexer.discard(sock)
                leg.close()
        self._audio.close()
        self._digits.close()
        # No digit comes any more; the callback often holds the call that
        # holds this session, a cycle only the garbage collector would free.
        self._digit_callback = None

    @property
    def closed(self) -> bool:
        """True once the session was closed (or never bound)."""
        return self._rtp is None or self._rtp.raw_socket is None

    async def bind(self) -> None:
        """Bind the RTP and RTCP ports, without the receive task of ``async with``.

        With a multiplexer, its task receives from now on. Otherwise it is
        for a caller that has a task to receive in anyway: it runs
        :meth:`serve` there. Either way :meth:`aclose` or :meth:`close` when
        done. Raises :class:`~trio_sip.errors.TransportError` when no port
        pair is free.
        """
        self.bind_nowait()
        await anyio.lowlevel.checkpoint()

    def bind_nowait(self) -> None:
        """:meth:`bind` without the checkpoint (binding never waits), for a
        caller with no task: a request handler opening the session of an
        incoming call."""
        if self.port_range is None:
            candidates: list[int] = [0] * _SYSTEM_PORT_ATTEMPTS
        else:
            ports = self.port_range.rtp_ports()
            # Start at a random port: sessions opened together (or by several
            # processes) then rarely race for the same one.
            start = random.randrange(len(ports))
            candidates = [ports[(start + i) % len(ports)] for i in range(len(ports))]
        for port in candidates:
            rtp = UDPLeg(self.host, port, receive_buffer=None)
            try:
                rtp.bind_nowait()
            except TransportError:
                continue
            if rtp.port % 2:
                if port or rtp.port < 2:
                    rtp.close()
                    continue
                # The system gave an odd port: it does for RTCP if the even
                # one below is free (one socket fewer than starting again).
                rtcp, rtp = rtp, UDPLeg(self.host, rtp.port - 1, receive_buffer=None)
                try:
                    rtp.bind_nowait()
                except TransportError:
                    rtcp.close()
                    continue
                self._opened(rtp, rtcp)
                return
            rtcp = UDPLeg(self.host, rtp.port + 1, receive_buffer=None)
            try:
                rtcp.bind_nowait()
            except TransportError:
                rtp.close()
                continue
            self._opened(rtp, rtcp)
            return
        where = "from the system" if self.port_range is None else f"in {self.port_range}"
        raise TransportError(f"no free even/odd port pair {where} on {self.host}")

    async def serve(self) -> None:
        """Receive RTP in the current task until the session closes (or the task is cancelled)."""
        if self._rtp is None:
            raise RuntimeError("the media session is not open")
        if self._multiplexer is not None:
            raise RuntimeError("the multiplexer receives for this session")
        if self._rtp.raw_socket is None:
            return  # closed (the call ended) before this task got to run
        await self._rtp.serve(self._on_datagram)

    async def _close_sockets(self) -> None:
        with anyio.CancelScope(shield=True):
            self.close()
            await anyio.lowlevel.checkpoint()

    def _opened(self, rtp: UDPLeg, rtcp: UDPLeg) -> None:
        self._rtp, self._rtcp = rtp, rtcp
        sock = rtp.raw_socket
        if self._multiplexer is not None and sock is not None:
            self._multiplexer.add(sock, self._on_rtp)

    # --- addresses and negotiation --------------------------------------------------

    @property
    def local_port(self) -> int:
        """The bound RTP port (even); RTCP's is one more."""
        if self._rtp is None:
            raise RuntimeError("the media session is not open")
        return self._rtp.port

    @property
    def local_address(self) -> Address:
        """(host, RTP port) as bound."""
        return self.host, self.local_port

    def apply(self, params: MediaParams) -> None:
        """Use what offer/answer negotiated: remote address, codec, event type, direction.

        Called again after a re-INVITE (hold, resume, new codec); the packet
        numbering carries on, as RFC 3550 wants for one SSRC.
        """
        if params.remote is not None:
            self.remote = params.remote
        self.codec = params.codec
        self.telephone_event = params.telephone_event
        self.direction = params.direction
        if params.ptime != self.ptime:
            # A new packet time starts a new slot clock where the old one's
            # next slot was, so neither the pace nor the timestamps jump.
            if self._origin is not None:
                self._origin += (self._slot + 1) * self.ptime / 1000
                self._base = self._position() + self.samples_per_frame
                self._slot = -1
            self.ptime = params.ptime

    # --- sending -----------------------------------------------------------------

    @property
    def samples_per_frame(self) -> int:
        """Samples in one packet time: 160 for 20 ms at 8 kHz."""
        return self.codec.clock_rate * self.ptime // 1000

    def _pacing(self) -> anyio.Lock:
        """The lock that keeps senders (audio, digits) to one slot clock."""
        if self._pace is None:
            self._pace = anyio.Lock()
        return self._pace

    def _position(self) -> int:
        return self._base + self._slot * self.samples_per_frame

    async def _next_slot(self) -> bool:
        """Wait for the next send slot; True if the sender paused before it (new talkspurt).

        The slot's sampling position is in ``_stamp``, taken before the wait:
        an apply() of a new ptime meanwhile restarts the clock after this slot,
        whose frame was cut to the old ptime (RFC 3550 5.1: the timestamp is
        the sampling instant of the frame's first octet).
        """
        now = anyio.current_time()
        period = self.ptime / 1000
        if self._origin is None:
            self._origin = now
            self._slot = 0
            self._stamp = self._base
            await anyio.lowlevel.checkpoint()
            return True
        self._slot += 1
        due = self._origin + self._slot * period
        if now > due + period:
            # More than a whole frame late: the sender paused. Skip to the slot
            # that is due now rather than sending a burst to catch up.
            slot = math.ceil((now - self._origin) / period - 1e-9)
            self._skipped += slot - self._slot
            self._slot = slot
            self._stamp = self._position()
            await anyio.sleep_until(self._origin + slot * period)
            return True
        self._stamp = self._position()
        await anyio.sleep_until(due)
        return False

    async def _emit(self, payload_type: int, position: int, payload: bytes, marker: bool) -> None:
        remote = self.remote
        if remote is None or self._rtp is None or not self.direction.sends:
            # Nothing is numbered either: a peer would count the sequence
            # numbers never sent (on hold, say) as lost.
            self._unsent = True
            return
        # RFC 3551 section 4.1: the first packet after packets were not sent
        # contiguously carries the marker, as after a pause of the sender.
        marker = marker or self._unsent
        self._unsent = False
        packet = self._sender.packet(payload_type, position, payload, marker=marker)
        try:
            await self._rtp.send(packet.to_bytes(), remote)
        except TransportError:
            # An ICMP error or a full buffer loses this packet, not the stream.
            self._send_errors += 1

    async def send(self, payload: bytes, *, marker: bool = False) -> None:
        """Send one frame of encoded audio in the next slot of the pacing clock.

        Each call is one packet time (``ptime`` ms): 160 octets for PCMU/PCMA
        at 20 ms. The first call sends at once; later ones wait for their slot.
        Nothing goes out while the remote address is unknown or our direction
        does not send, but the clock still advances.
        """
        # The payload was encoded in the codec of the call: a codec applied
        # while it waits for its slot must not relabel it (RFC 3551 section 6).
        payload_type = self.codec.payload_type
        async with self._pacing():
            paused = await self._next_slot()
            await self._emit(payload_type, self._stamp, payload, marker or paused)

    async def send_dtmf(
        self,
        digits: str,
        *,
        duration: float = 0.1,
        gap: float = 0.1,
        inband: bool = False,
        volume: int = 10,
    ) -> None:
        """Send ``digits`` (``0-9 * # A-D``), each ``duration`` s long, ``gap`` s apart.

        As RFC 4733 events when a telephone-event payload type is set and
        ``inband`` is False: a packet every ``ptime`` with the growing duration,
        then the end packet three times. Otherwise as dual tones in the audio
        codec (PCMU or PCMA), with silence in the gaps. Audio sent with
        :meth:`send` meanwhile waits until a digit is over.
        """
        for digit in digits:
            event_of_digit(digit)  # refuse a bad digit before sending any
        samples = round(duration * self.codec.clock_rate)
        for index, digit in enumerate(digits):
            if index:
                await self._gap(gap, inband)
            if inband or self.telephone_event is None:
                await self._send_tone(digit, samples)
            else:
                await self._send_event(digit, samples, volume)
            self._dtmf_sent += 1

    async def _send_event(self, digit: str, samples: int, volume: int) -> None:
        assert self.telephone_event is not None
        async with self._pacing():
            start: int | None = None
            for event, marker in event_payloads(
                digit, samples, self.samples_per_frame, volume=volume
            ):
                await self._next_slot()
                if start is None:
                    start = self._stamp  # every packet carries the event's start
                await self._emit(self.telephone_event, start, event.to_bytes(), marker)

    async def _send_tone(self, digit: str, samples: int) -> None:
        frame = self.samples_per_frame
        # The whole digit in one codec: its payload type is that of its encoding.
        codec = self.codec
        async with self._pacing():
            for offset in range(0, samples, frame):
                tone = dtmf_tone(digit, frame, sample_rate=codec.clock_rate, start=offset)
                payload = g711.encode(codec.encoding_name, g711.pcm_from_samples(tone))
                paused = await self._next_slot()
                await self._emit(codec.payload_type, self._stamp, payload, paused)

    async def _gap(self, gap: float, inband: bool) -> None:
        if not (inband or self.telephone_event is None):
            await anyio.sleep(gap)
            return
        # In-band, the gap is audio too: silence, so the detector sees the digit end.
        frames = max(1, round(gap * 1000 / self.ptime))
        codec = self.codec  # the silence is in this codec's law, whatever apply() does
        quiet = g711.silence(codec.encoding_name, self.samples_per_frame)
        async with self._pacing():
            for _ in range(frames):
                paused = await self._next_slot()
                await self._emit(codec.payload_type, self._stamp, quiet, paused)

    # --- receiving -----------------------------------------------------------------

    def _drain(self, leg: UDPLeg) -> None:
        sock = leg.raw_socket
        if sock is None:
            return  # closed already
        for _ in range(DRAIN_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except OSError:  # BlockingIOError: nothing more
                return
            self._on_rtp(data, (addr[0], addr[1]))

    def _on_datagram(self, data: object, leg: Leg, source: Address) -> None:
        if isinstance(data, bytes):
            self._on_rtp(data, source)

    def _on_rtp(self, data: bytes, source: Address) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ParseError:
            self._malformed += 1
            return
        is_event = packet.payload_type == self.telephone_event
        if not self._reception.update(packet, anyio.current_time(), timing=not is_event):
            return
        self._octets_received += len(packet.payload)
        if self.symmetric:
            self.remote = source
        if is_event:
            digit = self._events.feed(packet.timestamp, packet.payload)
            if digit is not None:
                self._digit(digit)
            return
        if self._detector is not None:
            pcm = self.decode(packet)
            if pcm is not None:
                for digit in self._detector.feed(g711.samples_from_pcm(pcm)):
                    self._digit(digit)
        if not self._audio.put(packet):
            self._dropped += 1

    def receive_digit(self, digit: str) -> None:
        """Take a digit that came outside RTP (a SIP INFO), like one from an RFC 4733 event.

        It goes to the :meth:`on_dtmf` callback or to :meth:`dtmf`; the
        statistics (``dtmf_received``) count only the digits of the RTP
        stream. Raises :class:`ValueError` for anything but ``0-9 * # A-D``.
        """
        event_of_digit(digit)
        self._deliver_digit(digit.upper())

    def _digit(self, digit: str) -> None:
        self._dtmf_received += 1
        self._deliver_digit(digit)

    def _deliver_digit(self, digit: str) -> None:
        if self._digit_callback is not None:
            self._digit_callback(digit)
        elif not self._digits.put(digit):
            self._dropped += 1

    def receive(self) -> AsyncIterator[RtpPacket]:
        """The received audio packets (RFC 4733 events excluded), as they arrive.

        ``async for packet in media.receive(): ...`` ends when the session
        closes, after the packets already received. There is one stream of
        packets: with several consumers, each packet goes to one of them.
        """
        return self._audio

    def dtmf(self) -> AsyncIterator[str]:
        """Received digits, from RFC 4733 events and (with ``inband_dtmf``) tones."""
        return self._digits

    def on_dtmf(self, callback: Callable[[str], object] | None) -> None:
        """Call ``callback(digit)`` for each received digit instead of queueing it for :meth:`dtmf`.

        For a caller with no task to iterate in. It runs in the receive task
        and must not block; None goes back to the queue.
        """
        self._digit_callback = callback

    def decode(self, packet: RtpPacket) -> bytes | None:
        """A packet's audio as 16-bit PCM, or None if it is not PCMU/PCMA.

        The payload type is looked up in our codec, then in RFC 3551's static
        table (a peer may send PCMA in a call that offered both).
        """
        if packet.payload_type == self.codec.payload_type:
            rtpmap: RtpMap | None = self.codec
        else:
            rtpmap = STATIC_PAYLOAD_TYPES.get(packet.payload_type)
        if rtpmap is None or rtpmap.encoding_name.upper() not in g711.G711_ENCODINGS:
            return None
        return g711.decode(rtpmap.encoding_name, packet.payload)

    def encode(self, pcm: bytes) -> bytes:
        """16-bit PCM in our codec (PCMU or PCMA)."""
        return g711.encode(self.codec.encoding_name, pcm)

    def silence_frame(self) -> bytes:
        """One packet time of silence in our codec."""
        return g711.silence(self.codec.encoding_name, self.samples_per_frame)

    def statistics(self) -> MediaStatistics:
        """Counters and the RFC 3550 loss and jitter estimates, as of now."""
        reception = self._reception
        return MediaStatistics(
            local=(self.host, self._rtp.port if self._rtp is not None else 0),
            remote=self.remote,
            ssrc=self._sender.ssrc,
            packets_sent=self._sender.packets,
            octets_sent=self._sender.octets,
            send_errors=self._send_errors,
            skipped_slots=self._skipped,
            remote_ssrc=reception.ssrc,
            packets_received=reception.received,
            octets_received=self._octets_received,
            packets_expected=reception.expected,
            packets_lost=reception.lost,
            duplicates=reception.duplicates,
            jitter=reception.jitter,
            malformed=self._malformed,
            dropped=self._dropped,
            dtmf_sent=self._dtmf_sent,
            dtmf_received=self._dtmf_received,
        )
