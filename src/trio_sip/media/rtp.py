"""RTP packets and receive statistics (RFC 3550), sans-IO.

:class:`RtpPacket` packs and unpacks the fixed header with its CSRC list,
header extension and padding (RFC 3550 section 5.1, 5.3.1). :class:`RtpSender`
numbers outgoing packets (random SSRC, sequence number and timestamp origin,
section 5.1) and :class:`ReceptionStats` follows one incoming source: extended
sequence numbers across the 16-bit wrap, loss (appendix A.3) and interarrival
jitter (section 6.4.1, appendix A.8). Nothing here reads a clock or a socket:
arrival times are passed in.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import Final

from ..errors import ParseError

__all__ = [
    "RTP_VERSION",
    "RtpExtension",
    "RtpPacket",
    "RtpSender",
    "ReceptionStats",
    "seq_newer",
]

#: The only RTP version (RFC 3550 section 5.1).
RTP_VERSION: Final = 2

_HEADER: Final = struct.Struct("!BBHII")
_EXTENSION: Final = struct.Struct("!HH")

# RFC 3550 appendix A.1: how far a sequence number may jump and still count as
# the same stream, and how far back a late packet may be.
_MAX_DROPOUT: Final = 3000
_MAX_MISORDER: Final = 100
_SEQ_MOD: Final = 1 << 16
# Sequence numbers remembered behind the highest, to tell a duplicate from a
# late packet (bit i of the mask: highest - i was received).
_WINDOW: Final = 128
_WINDOW_MASK: Final = (1 << _WINDOW) - 1


def seq_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b``, modulo 2**16 (serial arithmetic)."""
    return a != b and (a - b) & 0xFFFF < 0x8000


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 section 5.3.1): a 16-bit profile word and its data.

    ``data`` is a whole number of 32-bit words, as the length field counts words.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError(f"extension profile {self.profile} does not fit 16 bits")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise ValueError("extension data must be a whole number of 32-bit words")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 section 5.1).

    ``padding`` is the number of padding octets at the end, the count octet
    included (0: the P bit is clear). Fields are checked on construction, so a
    packet that exists always packs.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "csrcs", tuple(self.csrcs))
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is not 0-127")
        if not 0 <= self.sequence <= 0xFFFF:
            raise ValueError(f"sequence number {self.sequence} does not fit 16 bits")
        for name, value in (("timestamp", self.timestamp), ("SSRC", self.ssrc)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"{name} {value} does not fit 32 bits")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs fit the CC field")
        for csrc in self.csrcs:
            if not 0 <= csrc <= 0xFFFFFFFF:
                raise ValueError(f"CSRC {csrc} does not fit 32 bits")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding {self.padding} is not 0-255")

    def to_bytes(self) -> bytes:
        """The packet on the wire; padding octets are zero but the last (the count)."""
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXTENSION.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)

    def __bytes__(self) -> bytes:
        """Same as :meth:`to_bytes`."""
        return self.to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Unpack a datagram; ParseError if it is not a well-formed RTP version 2 packet."""
        size = len(data)
        if size < 12:
            raise ParseError(f"RTP packet of {size} bytes is shorter than its header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ParseError(f"RTP version {first >> 6} is not 2")
        offset = 12
        count = first & 0x0F
        csrcs: tuple[int, ...] = ()
        if count:
            end = offset + 4 * count
            if end > size:
                raise ParseError("RTP CSRC list runs past the packet")
            csrcs = struct.unpack_from(f"!{count}I", data, offset)
            offset = end
        extension = None
        if first & 0x10:
            if offset + 4 > size:
                raise ParseError("RTP header extension runs past the packet")
            profile, words = _EXTENSION.unpack_from(data, offset)
            offset += 4
            end = offset + 4 * words
            if end > size:
                raise ParseError("RTP header extension runs past the packet")
            extension = RtpExtension(profile, bytes(data[offset:end]))
            offset = end
        end = size
        padding = 0
        if first & 0x20:
            # RFC 3550 5.1: the last octet counts the padding, itself included.
            padding = data[-1]
            if padding == 0 or end - padding < offset:
                raise ParseError(f"RTP padding of {padding} octets does not fit the packet")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )


class RtpSender:
    """Numbers the packets of one outgoing RTP stream.

    SSRC, first sequence number and timestamp origin are random (RFC 3550
    section 5.1: "the initial value ... SHOULD be random" so that known-plaintext
    attacks on encryption are harder, and section 8.1 for the SSRC). Each packet
    takes the next sequence number; the timestamp is ``timestamp_base`` plus the
    sampling position the caller gives, modulo 2**32.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = ("next_sequence", "octets", "packets", "ssrc", "timestamp_base")

    def __init__(
        self,
        *,
        ssrc: int | None = None,
        first_sequence: int | None = None,
        timestamp_base: int | None = None,
    ) -> None:
        # One read of the system's random source for all three (one
        # system call per session instead of three).
        random = int.from_bytes(secrets.token_bytes(10))
        if first_sequence is None:
            first_sequence = random & 0xFFFF
        if timestamp_base is None:
            timestamp_base = (random >> 16) & 0xFFFFFFFF
        self.ssrc: int = (random >> 48) & 0xFFFFFFFF if ssrc is None else ssrc
        self.next_sequence: int = first_sequence
        self.timestamp_base: int = timestamp_base
        #: Packets and payload octets produced, for RTCP-style sender counts.
        self.packets = 0
        self.octets = 0

    def timestamp_at(self, position: int) -> int:
        """The RTP timestamp of sampling position ``position`` (samples since the origin)."""
        return (self.timestamp_base + position) & 0xFFFFFFFF

    def packet(
        self, payload_type: int, position: int, payload: bytes, *, marker: bool = False
    ) -> RtpPacket:
        """The next packet: ``payload`` sampled at ``position``, with the next sequence number."""
        packet = RtpPacket(
            payload_type,
            self.next_sequence,
            self.timestamp_at(position),
            self.ssrc,
            payload,
            marker,
        )
        self.next_sequence = (self.next_sequence + 1) & 0xFFFF
        self.packets += 1
        self.octets += len(payload)
        return packet


class ReceptionStats:
    """Reception statistics of one RTP source (RFC 3550 appendix A.1, A.3, A.8).

    Feed every packet with :meth:`update`; it returns False for a packet that
    does not belong to the stream's sequence (a jump beyond the allowed dropout
    that is not yet confirmed by a second packet), which the caller should drop.
    A new SSRC restarts the statistics once it is confirmed: the next packet
    of that SSRC follows in sequence (probation, appendix A.1). The first
    source is taken at once.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = (
        "_bad_sequence",
        "_candidate",
        "_seen",
        "_transit",
        "base_sequence",
        "clock_rate",
        "cycles",
        "duplicates",
        "jitter_units",
        "max_sequence",
        "received",
        "ssrc",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.received = 0
        self.base_sequence = 0
        self.max_sequence = 0
        self.cycles = 0
        self.duplicates = 0
        self._bad_sequence: int | None = None
        # A new SSRC on probation: (ssrc, the sequence number that confirms it).
        self._candidate: tuple[int, int] | None = None
        self._seen = 0
        self._transit: float | None = None
        #: Interarrival jitter in timestamp units (RFC 3550 section 6.4.1).
        self.jitter_units = 0.0

    def _restart(self, packet: RtpPacket) -> None:
        self.ssrc = packet.ssrc
        self.base_sequence = packet.sequence
        self.max_sequence = packet.sequence
        self.cycles = 0
        self.received = 0
        self.duplicates = 0
        self._bad_sequence = None
        self._candidate = None
        self._seen = 1
        self._transit = None
        self.jitter_units = 0.0

    def update(self, packet: RtpPacket, arrival: float, *, timing: bool = True) -> bool:
        """Account for ``packet`` that arrived at ``arrival`` seconds (any clock origin).

        ``timing=False`` leaves the packet out of the jitter estimate: RFC 4733
        events keep the event's start as their timestamp, which says nothing
        about network delay.
        """
        if packet.ssrc != self.ssrc:
            if self.ssrc is not None and self._candidate != (packet.ssrc, packet.sequence):
                # Appendix A.1 (MIN_SEQUENTIAL 2): one stray or forged packet
                # of another SSRC neither ends the stream's statistics nor,
                # in a symmetric session, moves where our RTP goes.
                self._candidate = (packet.ssrc, (packet.sequence + 1) & 0xFFFF)
                return False
            self._restart(packet)
        else:
            seq = packet.sequence
            delta = (seq - self.max_sequence) & 0xFFFF
            if delta == 0:
                self.duplicates += 1
            elif delta < _MAX_DROPOUT:
                if seq < self.max_sequence:
                    self.cycles += _SEQ_MOD  # the 16-bit counter wrapped
                self.max_sequence = seq
                self._seen = ((self._seen << delta) | 1) & _WINDOW_MASK
            elif delta > _SEQ_MOD - _MAX_MISORDER:
                # Late (reordered) or a duplicate of a recent packet.
                behind = _SEQ_MOD - delta
                if behind < _WINDOW:
                    if self._seen >> behind & 1:
                        self.duplicates += 1
                    self._seen |= 1 << behind
            else:
                # A big jump: the sender restarted, or this is stray. Believe it
                # when the next packet follows it (appendix A.1).
                if seq != self._bad_sequence:
                    self._bad_sequence = (seq + 1) & 0xFFFF
                    return False
                self._restart(packet)
        self.received += 1
        if timing:
            self._jitter(packet.timestamp, arrival)
        return True

    def _jitter(self, timestamp: int, arrival: float) -> None:
        # RFC 3550 6.4.1: D = (Rj - Ri) - (Sj - Si) in timestamp units, and
        # J += (|D| - J) / 16. The transit difference is taken modulo 2**32 so
        # that a timestamp wrap is not a jump.
        transit = arrival * self.clock_rate - timestamp
        previous = self._transit
        self._transit = transit
        if previous is None:
            return
        d = (transit - previous + 2**31) % 2**32 - 2**31
        self.jitter_units += (abs(d) - self.jitter_units) / 16

    @property
    def extended_max_sequence(self) -> int:
        """The highest sequence number seen, with the wrap count in the high bits."""
        return self.cycles + self.max_sequence

    @property
    def expected(self) -> int:
        """Packets expected from the first to the highest sequence number (appendix A.3)."""
        return 0 if self.ssrc is None else self.extended_max_sequence - self.base_sequence + 1

    @property
    def lost(self) -> int:
        """Packets expected but not received (duplicates seen in the last 128 are not
        counted as received); never negative."""
        return max(0, self.expected - self.received + self.duplicates)

    @property
    def jitter(self) -> float:
        """Interarrival jitter in seconds."""
        return self.jitter_units / self.clock_rate
