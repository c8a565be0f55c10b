"""DTMF without an event loop: RFC 4733 payloads and Goertzel detection."""

from __future__ import annotations

import math
import random

import pytest

from trio_sip.errors import ParseError
from trio_sip.media import g711
from trio_sip.media.dtmf import (
    DIGITS,
    DtmfDetector,
    EventReceiver,
    TelephoneEvent,
    digit_of_event,
    digit_of_info,
    dtmf_tone,
    event_of_digit,
    event_payloads,
    info_body,
)


def test_event_codes() -> None:
    assert [event_of_digit(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert event_of_digit("a") == 12
    assert digit_of_event(11) == "#"
    assert digit_of_event(16) is None  # flash
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError, match="DTMF digit"):
            event_of_digit(bad)


def test_event_payload_layout() -> None:
    # RFC 4733 2.3: event, E|R|volume, duration
    assert TelephoneEvent(11, end=True, volume=10, duration=800).to_bytes() == b"\x0b\x8a\x03\x20"
    assert TelephoneEvent(5, volume=63, duration=160).to_bytes() == b"\x05\x3f\x00\xa0"
    assert TelephoneEvent.parse(b"\x0b\xca\x03\x20") == TelephoneEvent(
        11, True, 10, 800
    )  # R ignored
    assert TelephoneEvent.parse(b"\x03\x0a\x00\xa0extra").digit == "3"
    with pytest.raises(ParseError):
        TelephoneEvent.parse(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="volume"):
        TelephoneEvent(1, volume=64)


def test_event_payloads_grow_then_end_three_times() -> None:
    payloads = list(event_payloads("7", 800, 160))
    assert [(p.duration, p.end, marker) for p, marker in payloads] == [
        (160, False, True),
        (320, False, False),
        (480, False, False),
        (640, False, False),
        (800, True, False),
        (800, True, False),
        (800, True, False),
    ]
    assert {p.event for p, _ in payloads} == {7}


def test_short_event_is_only_end_packets_with_one_marker() -> None:
    payloads = list(event_payloads("#", 100, 160))
    assert [(p.duration, p.end, marker) for p, marker in payloads] == [
        (160, True, True),
        (160, True, False),
        (160, True, False),
    ]


def test_event_too_long_for_16_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bits"):
        list(event_payloads("1", 70000, 160))


def test_event_receiver_reports_each_event_once() -> None:
    receiver = EventReceiver()
    seen = []
    for timestamp, digit in ((1000, "1"), (5000, "1"), (9000, "#")):
        for event, _ in event_payloads(digit, 480, 160):
            seen.append(receiver.feed(timestamp, event.to_bytes()))
    assert [d for d in seen if d is not None] == ["1", "1", "#"]
    assert receiver.feed(12000, b"\x10\x8a\x00\xa0") is None  # flash is not a digit
    assert receiver.feed(13000, b"\x01") is None  # malformed


def _through(encoding: str, samples: list[int]) -> list[int]:
    pcm = g711.pcm_from_samples(samples)
    return list(g711.samples_from_pcm(g711.decode(encoding, g711.encode(encoding, pcm))))


@pytest.mark.parametrize("encoding", ["PCMU", "PCMA"])
@pytest.mark.parametrize("digit", list(DIGITS))
def test_goertzel_detects_every_digit_through_g711(encoding: str, digit: str) -> None:
    detector = DtmfDetector()
    audio = [0] * 300 + dtmf_tone(digit, 640) + [0] * 600
    found = []
    for start in range(0, len(audio), 160):  # fed in 20 ms frames, like RTP
        found += detector.feed(_through(encoding, audio[start : start + 160]))
    assert found == [digit]


def test_goertzel_counts_a_repeated_digit_twice_and_a_held_one_once() -> None:
    detector = DtmfDetector()
    press = dtmf_tone("5", 800)
    assert detector.feed(press + [0] * 400 + press + [0] * 400) == ["5", "5"]
    assert detector.feed(dtmf_tone("9", 8000)) == ["9"]


def test_goertzel_rejects_noise() -> None:
    rng = random.Random(4733)
    detector = DtmfDetector()
    noise = [rng.randint(-12000, 12000) for _ in range(16000)]
    assert detector.feed(_through("PCMU", noise)) == []


@pytest.mark.parametrize("frequency", [697.0, 941.0, 1209.0, 1633.0, 1000.0])
def test_goertzel_rejects_single_tones(frequency: float) -> None:
    detector = DtmfDetector()
    tone = [round(12000 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(8000)]
    assert detector.feed(_through("PCMA", tone)) == []


def test_goertzel_rejects_excessive_twist_and_silence() -> None:
    detector = DtmfDetector()
    low, high = 697.0, 1209.0
    # The column tone 20 dB below the row tone: beyond Q.24's twist.
    twisted = [
        round(
            10000 * math.sin(2 * math.pi * low * n / 8000)
            + 1000 * math.sin(2 * math.pi * high * n / 8000)
        )
        for n in range(4000)
    ]
    assert detector.feed(twisted) == []
    assert detector.feed([0] * 4000) == []
    # Each tone at -55 dBm0 (peak 40): Q.24's "must not operate" level.
    assert detector.feed(dtmf_tone("1", 4000, amplitude=40)) == []
    # At -40 dBm0 (peak 227) it is a digit.
    assert detector.feed([0] * 400 + dtmf_tone("1", 4000, amplitude=227)) == ["1"]


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", b"Duration=250\r\nsignal= #\r\n", "#"),
        ("application/dtmf-relay", b"Signal=10\r\nDuration=100\r\n", "*"),
        ("application/dtmf-relay", b"Signal=15\n", "D"),
        ("application/dtmf-relay", b"Signal=a", "A"),
        ("application/dtmf", b"7", "7"),
        ("application/dtmf", b" b\r\n", "B"),
    ],
)
def test_digit_of_a_sip_info_body(content_type: str, body: bytes, digit: str) -> None:
    assert digit_of_info(content_type, body) == digit


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b"Duration=160\r\n"),
        ("application/dtmf-relay", b"Signal=X\r\n"),
        ("application/dtmf-relay", b"Signal=16\r\n"),
        ("application/dtmf-relay", b"Signal=\r\n"),
        ("application/dtmf-relay", b"Signal=\xff\r\n"),
        ("application/dtmf", b"123"),
        ("application/dtmf", b""),
        ("text/plain", b"5"),
    ],
)
def test_a_sip_info_body_without_one_digit_is_refused(content_type: str, body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one kind
        digit_of_info(content_type, body)


def test_a_sip_info_body_round_trips_every_digit() -> None:
    for digit in "0123456789*#ABCD":
        body = info_body(digit.lower(), duration=0.16)
        assert body == f"Signal={digit}\r\nDuration=160\r\n".encode()
        assert digit_of_info("application/dtmf-relay", body) == digit
    with pytest.raises(ValueError, match="not a DTMF digit"):
        info_body("E")
