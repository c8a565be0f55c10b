"""DTMF, sans-IO: RFC 4733 telephone-events, tone synthesis and Goertzel detection.

- :class:`TelephoneEvent` packs and unpacks the 4-octet event payload
  (RFC 4733 section 2.3).
- :func:`event_payloads` gives the payloads of one whole event, one per packet
  time, ending with the end packet sent three times (section 2.5.1.4).
- :class:`EventReceiver` turns incoming event packets into digits, once per
  event however many packets (and retransmitted ends) carry it.
- :func:`dtmf_tone` synthesises the dual tone of a digit (ITU-T Q.23) for in-band
  sending, and :class:`DtmfDetector` finds digits in received audio with the
  Goertzel algorithm, checking the Q.24 conditions that keep speech, noise and
  single tones from being taken for digits.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import ParseError

__all__ = [
    "DIGITS",
    "DTMF_FREQUENCIES",
    "DTMF_INFO_TYPES",
    "DtmfDetector",
    "EventReceiver",
    "TelephoneEvent",
    "digit_of_event",
    "digit_of_info",
    "dtmf_tone",
    "event_of_digit",
    "event_payloads",
    "info_body",
]

#: The 16 DTMF digits in RFC 4733 event code order (``0-9 * # A-D`` are 0-15).
DIGITS: Final = "0123456789*#ABCD"

_ROWS: Final = (697.0, 770.0, 852.0, 941.0)
_COLUMNS: Final = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD: Final = ("123A", "456B", "789C", "*0#D")

#: Digit -> (row frequency, column frequency) in Hz (ITU-T Q.23).
DTMF_FREQUENCIES: Final = {
    digit: (_ROWS[row], _COLUMNS[column])
    for row, keys in enumerate(_KEYPAD)
    for column, digit in enumerate(keys)
}

_EVENT: Final = struct.Struct("!BBH")


def event_of_digit(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit (case-insensitive); ValueError if none."""
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return code


def digit_of_event(event: int) -> str | None:
    """The digit of an event code, or None for the other events (flash is 16)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


#: The bodies that carry a digit in a SIP INFO, as PBXes and gateways send
#: them: ``application/dtmf-relay`` (``Signal=5`` and ``Duration=160`` lines)
#: and ``application/dtmf`` (the digit alone).
DTMF_INFO_TYPES: Final = ("application/dtmf-relay", "application/dtmf")


def digit_of_info(content_type: str, body: bytes) -> str:
    """The digit of a SIP INFO whose body is one of :data:`DTMF_INFO_TYPES`.

    ``content_type`` is the media type, lower case, without parameters.
    The signal is a digit (``0-9 * # A-D``, any case) or its RFC 4733 event
    code (``10`` for ``*`` ... ``15`` for ``D``), as some gateways write it.
    Raises :class:`ValueError` for any other body.
    """
    text = body.decode("ascii", "strict")
    if content_type == "application/dtmf-relay":
        signal = None
        for line in text.splitlines():
            name, equals, value = line.partition("=")
            if equals and name.strip().lower() == "signal":
                signal = value.strip()
                break
        if signal is None:
            raise ValueError("no Signal line in the application/dtmf-relay body")
    elif content_type == "application/dtmf":
        signal = text.strip()
    else:
        raise ValueError(f"{content_type!r} is not a DTMF body")
    if len(signal) == 2 and signal.isdigit() and (digit := digit_of_event(int(signal))):
        return digit
    event_of_digit(signal)
    return signal.upper()


def info_body(digit: str, duration: float = 0.1) -> bytes:
    """The ``application/dtmf-relay`` body of a SIP INFO for ``digit``, ``duration`` s long."""
    event_of_digit(digit)
    return f"Signal={digit.upper()}\r\nDuration={round(duration * 1000)}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The payload of an RFC 4733 event packet (section 2.3).

    ``volume`` is the power level in -dBm0 (0 to 63); ``duration`` is in
    timestamp units since the event began, which the packet's RTP timestamp gives.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise ValueError(f"event code {self.event} does not fit 8 bits")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"volume {self.volume} is not 0-63")
        if not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"duration {self.duration} does not fit 16 bits")

    def to_bytes(self) -> bytes:
        """The 4-octet payload; the reserved bit is zero (section 2.3)."""
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Read the first event of a payload; ParseError if shorter than 4 octets.

        Further blocks (RFC 4733 2.5.1.5 redundancy for earlier events) are
        ignored: the receiver has already seen or lost those events.
        """
        if len(payload) < 4:
            raise ParseError(f"telephone-event payload of {len(payload)} octets, need 4")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit of this event, or None for non-DTMF events."""
        return digit_of_event(self.event)


def event_payloads(
    digit: str, duration: int, samples_per_packet: int, *, volume: int = 10, end_copies: int = 3
) -> Iterator[tuple[TelephoneEvent, bool]]:
    """The payloads of one event, one per packet time, each with its marker bit.

    The first packet has the marker set (RFC 4733 2.5.1.3); each following one
    reports the duration so far; the last duration (at least ``duration``
    samples, rounded up to whole packets) goes out ``end_copies`` times with the
    E bit, since "the final packet for an event MUST be sent" three times to
    survive loss (section 2.5.1.4). All share the timestamp of the event start,
    which the caller puts in the RTP header. Durations past 16 bits (over 8 s at
    8 kHz) are refused rather than split into segments (section 2.5.1.3).
    """
    code = event_of_digit(digit)
    if samples_per_packet <= 0:
        raise ValueError("samples_per_packet must be positive")
    packets = max(1, -(-duration // samples_per_packet))
    if packets * samples_per_packet > 0xFFFF:
        raise ValueError(f"an event of {duration} samples does not fit RFC 4733's 16 bits")
    for index in range(1, packets):
        yield TelephoneEvent(code, False, volume, index * samples_per_packet), index == 1
    last = TelephoneEvent(code, True, volume, packets * samples_per_packet)
    for copy in range(end_copies):
        yield last, packets == 1 and copy == 0


# How many events back EventReceiver recognises a late packet: the network
# reorders packets by a few packet times, not by several whole events.
_EVENTS_REMEMBERED: Final = 4


class EventReceiver:
    """Turns RFC 4733 packets into digits, one per event.

    An event is known by its RTP timestamp (RFC 4733 2.5.2.1: packets of one
    event share it). The digit is reported with the first packet of a new
    event, so that losing the end packets cannot lose the digit, and every later
    packet of the same event (updates, retransmitted ends) is ignored, also
    one that the network delivers after the next event has begun.
    """

    # Slotted: a busy UA holds thousands (one per call), and a dict each adds up.
    __slots__ = ("_recent",)

    def __init__(self) -> None:
        # The last few events, newest first: a late packet of any of them
        # (a retransmitted end overtaken by the next digit) is not a new one.
        self._recent: tuple[tuple[int, int], ...] = ()

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        """The digit a packet starts, or None (a known event, non-DTMF event, or malformed)."""
        try:
            event = TelephoneEvent.parse(payload)
        except ParseError:
            return None
        key = (timestamp, event.event)
        if key in self._recent:
            return None
        self._recent = (key, *self._recent[: _EVENTS_REMEMBERED - 1])
        return event.digit


def dtmf_tone(
    digit: str,
    samples: int,
    *,
    sample_rate: int = 8000,
    amplitude: int = 8000,
    start: int = 0,
) -> list[int]:
    """``samples`` samples of the digit's dual tone, from sample ``start`` of the tone.

    Each of the two frequencies has peak ``amplitude`` (16-bit scale; 8000 is
    about -9 dBm0 per tone in G.711, well within Q.23's levels). ``start`` lets
    frames of one tone join without a phase jump.
    """
    low, high = DTMF_FREQUENCIES[digit.upper()]
    w_low = 2 * math.pi * low / sample_rate
    w_high = 2 * math.pi * high / sample_rate
    return [
        round(amplitude * (math.sin(w_low * n) + math.sin(w_high * n)))
        for n in range(start, start + samples)
    ]


class DtmfDetector:
    """In-band DTMF detection with the Goertzel algorithm.

    Audio is cut into blocks of ``block_size`` samples (205 at 8 kHz: the bins
    then fall close to the eight DTMF frequencies) and each block is tested:

    - the strongest row and column tones hold most of the block's energy
      (``min_energy_ratio``): speech and noise spread theirs;
    - both tones are present (``min_tone_ratio`` each): a single tone is not a digit;
    - the two differ by no more than the twist Q.24 allows (``max_twist_db``);
    - the other tones of each group are well below the strongest
      (``min_group_margin_db``);
    - the block is not near silence: its mean square (16-bit units) reaches
      ``min_level``; the default is two tones of about -50 dBm0 each (0 dBm0 is a
      sine of peak 22706 in G.711), a little above the -55 dBm0 that Q.24 says
      must not be taken for a digit.

    A digit is reported when two blocks in a row agree and the previous report
    has ended (a block without a digit between two presses), which is Q.24's
    minimum duration of about 40 ms and keeps one press from counting twice.
    """

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        block_size: int = 205,
        min_energy_ratio: float = 0.6,
        min_tone_ratio: float = 0.15,
        max_twist_db: float = 8.0,
        min_group_margin_db: float = 10.0,
        min_level: float = 5000.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.block_size = block_size
        self._frequencies = (*_ROWS, *_COLUMNS)
        self._coefficients = tuple(
            2 * math.cos(2 * math.pi * f / sample_rate) for f in self._frequencies
        )
        self._min_energy_ratio = min_energy_ratio
        self._min_tone_ratio = min_tone_ratio
        self._max_twist = 10 ** (max_twist_db / 10)
        self._group_margin = 10 ** (min_group_margin_db / 10)
        self._min_level = min_level
        self._buffer: list[int] = []
        self._candidate: str | None = None
        self._reported: str | None = None

    def feed(self, samples: Sequence[int]) -> list[str]:
        """Add samples; return the digits that became certain (usually none)."""
        buffer = self._buffer
        buffer.extend(samples)
        found: list[str] = []
        size = self.block_size
        while len(buffer) >= size:
            block = buffer[:size]
            del buffer[:size]
            digit = self.classify(block)
            if digit is None:
                self._reported = None
            elif digit == self._candidate and digit != self._reported:
                self._reported = digit
                found.append(digit)
            self._candidate = digit
        return found

    def classify(self, block: Sequence[int]) -> str | None:
        """The digit one block holds, or None; no state is kept."""
        size = len(block)
        energy = 0.0
        for sample in block:
            energy += sample * sample
        if size == 0 or energy / size < self._min_level:
            return None
        powers = [self._goertzel(block, c) for c in self._coefficients]
        # 2|X|^2 / (N * sum x^2) is the share of the block's energy at that
        # frequency: about 1 for a pure tone on the bin, 2/N for white noise.
        scale = 2.0 / (size * energy)
        shares = [p * scale for p in powers]
        rows, columns = shares[:4], shares[4:]
        row = max(range(4), key=rows.__getitem__)
        column = max(range(4), key=columns.__getitem__)
        low, high = rows[row], columns[column]
        if low < self._min_tone_ratio or high < self._min_tone_ratio:
            return None
        if low + high < self._min_energy_ratio:
            return None
        if low > high * self._max_twist or high > low * self._max_twist:
            return None
        for group, best in ((rows, row), (columns, column)):
            for index, share in enumerate(group):
                if index != best and share * self._group_margin > group[best]:
                    return None
        return _KEYPAD[row][column]

    @staticmethod
    def _goertzel(block: Sequence[int], coefficient: float) -> float:
        s1 = s2 = 0.0
        for sample in block:
            s1, s2 = sample + coefficient * s1 - s2, s1
        return s1 * s1 + s2 * s2 - coefficient * s1 * s2
