"""Hypothesis properties of the sans-IO media code: round trips and no crash on bad input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_sip.errors import ParseError
from trio_sip.media import g711
from trio_sip.media.dtmf import EventReceiver, TelephoneEvent
from trio_sip.media.rtp import ReceptionStats, RtpExtension, RtpPacket

u32 = st.integers(0, 0xFFFFFFFF)

packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_rtp_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(packet.to_bytes()) == packet


@given(st.binary(max_size=120))
def test_rtp_parse_never_crashes(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ParseError:
        return
    # What parses serialises back to the same bytes, padding contents aside.
    again = packet.to_bytes()
    assert len(again) == len(data)
    assert again[: len(again) - packet.padding] == data[: len(data) - packet.padding]


@given(st.binary(max_size=12))
def test_event_parse_never_crashes(data: bytes) -> None:
    try:
        event = TelephoneEvent.parse(data)
    except ParseError:
        assert len(data) < 4
        return
    assert event.to_bytes()[0] == data[0]
    assert EventReceiver().feed(0, data) == event.digit


@given(st.lists(st.integers(-32768, 32767), max_size=300))
def test_g711_round_trip_is_idempotent(samples: list[int]) -> None:
    pcm = g711.pcm_from_samples(samples)
    for name in ("PCMU", "PCMA"):
        once = g711.decode(name, g711.encode(name, pcm))
        assert g711.decode(name, g711.encode(name, once)) == once
        assert len(once) == len(pcm)


@given(st.integers(0, 0xFFFF), st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_reception_counts_any_order_of_a_stream(first: int, order: list[int]) -> None:
    stats = ReceptionStats(8000)
    stats.update(RtpPacket(0, first, 0, 9), 0.0)
    for offset in order:
        stats.update(RtpPacket(0, (first + offset) & 0xFFFF, offset * 160, 9), offset * 0.02)
    distinct = {0, *order}
    assert stats.expected == max(distinct) + 1
    assert stats.lost == stats.expected - len(distinct)
