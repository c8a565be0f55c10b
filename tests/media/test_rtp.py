"""RTP packets, numbering and reception statistics (RFC 3550), without an event loop."""

from __future__ import annotations

import struct

import pytest

from trio_sip.errors import ParseError
from trio_sip.media.rtp import ReceptionStats, RtpExtension, RtpPacket, RtpSender, seq_newer


def test_minimal_header_layout() -> None:
    packet = RtpPacket(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 3, marker=True)
    data = packet.to_bytes()
    assert data == bytes([0x80, 0x80, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]) + b"\xff" * 3
    assert RtpPacket.parse(data) == packet


def test_round_trip_with_csrcs_extension_and_padding() -> None:
    packet = RtpPacket(
        payload_type=101,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=7,
        payload=b"abcde",
        marker=False,
        csrcs=(1, 0xFFFFFFFF, 3),
        extension=RtpExtension(0xBEDE, b"\x10\x20\x30\x40" * 2),
        padding=3,
    )
    data = packet.to_bytes()
    # V=2, P=1, X=1, CC=3
    assert data[0] == 0x80 | 0x20 | 0x10 | 3
    assert data[1] == 101
    assert struct.unpack_from("!3I", data, 12) == (1, 0xFFFFFFFF, 3)
    assert struct.unpack_from("!HH", data, 24) == (0xBEDE, 2)
    assert data[-3:] == b"\x00\x00\x03"
    assert len(data) == 12 + 12 + 4 + 8 + 5 + 3
    assert RtpPacket.parse(data) == packet


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x00" + b"\x00" * 9, "shorter"),
        (b"\x40\x00" + b"\x00" * 10, "version"),
        (b"\x82\x00" + b"\x00" * 10 + b"\x00" * 4, "CSRC"),
        (b"\x90\x00" + b"\x00" * 10 + b"\x00\x00", "extension"),
        (b"\x90\x00" + b"\x00" * 10 + b"\x00\x00\x00\x02" + b"\x00" * 4, "extension"),
        (b"\xa0\x00" + b"\x00" * 10 + b"ab\x05", "padding"),
        (b"\xa0\x00" + b"\x00" * 10 + b"ab\x00", "padding"),
    ],
)
def test_malformed_packets_are_parse_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        RtpPacket.parse(data)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"csrcs": tuple(range(16))},
        {"padding": 256},
    ],
)
def test_fields_out_of_range_are_refused(kwargs: dict[str, object]) -> None:
    values: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    values.update(kwargs)
    with pytest.raises(ValueError):  # noqa: PT011 - each field has its own message
        RtpPacket(**values)  # type: ignore[arg-type]


def test_extension_must_be_whole_words() -> None:
    with pytest.raises(ValueError, match="32-bit words"):
        RtpExtension(1, b"abc")


def test_sender_numbers_and_wraps() -> None:
    sender = RtpSender(ssrc=99, first_sequence=65534, timestamp_base=0xFFFFFF00)
    packets = [sender.packet(0, n * 160, b"x" * 160) for n in range(4)]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
    assert {p.ssrc for p in packets} == {99}
    assert sender.packets == 4
    assert sender.octets == 640


def test_sender_origins_are_random() -> None:
    senders = [RtpSender() for _ in range(8)]
    assert len({s.ssrc for s in senders}) > 1
    assert len({s.next_sequence for s in senders}) > 1
    assert len({s.timestamp_base for s in senders}) > 1


def test_seq_newer_is_serial_arithmetic() -> None:
    assert seq_newer(1, 0)
    assert seq_newer(0, 65535)
    assert not seq_newer(65535, 0)
    assert not seq_newer(5, 5)


def _stream(start: int, count: int, *, ssrc: int = 1) -> list[RtpPacket]:
    return [
        RtpPacket(0, (start + i) & 0xFFFF, (1000 + 160 * i) & 0xFFFFFFFF, ssrc)
        for i in range(count)
    ]


def test_reception_counts_across_the_sequence_wrap() -> None:
    stats = ReceptionStats(8000)
    for i, packet in enumerate(_stream(65530, 20)):
        assert stats.update(packet, i * 0.02)
    assert stats.cycles == 65536
    assert stats.expected == 20
    assert stats.received == 20
    assert stats.lost == 0
    assert stats.jitter == pytest.approx(0.0)


def test_reception_counts_loss_and_duplicates() -> None:
    stats = ReceptionStats(8000)
    packets = _stream(100, 10)
    arrived = [*packets[:3], packets[2], *packets[5:]]  # 3 and 4 lost, 2 twice
    for i, packet in enumerate(arrived):
        stats.update(packet, i * 0.02)
    assert stats.expected == 10
    assert stats.duplicates == 1
    assert stats.lost == 2


def test_reception_jitter_follows_rfc3550() -> None:
    stats = ReceptionStats(8000)
    packets = _stream(0, 3)
    # Second packet 10 ms late: D = 80 units, J = 80/16 = 5; third on time
    # again: D = -80, J = 5 + (80 - 5)/16.
    for packet, arrival in zip(packets, (0.0, 0.03, 0.04), strict=True):
        stats.update(packet, arrival)
    assert stats.jitter_units == pytest.approx(5 + 75 / 16)
    assert stats.jitter == pytest.approx((5 + 75 / 16) / 8000)


def test_reception_ignores_a_lone_jump_and_follows_a_confirmed_one() -> None:
    stats = ReceptionStats(8000)
    for packet in _stream(10, 5):
        stats.update(packet, 0.0)
    assert not stats.update(RtpPacket(0, 30000, 0, 1), 0.0)
    assert stats.update(RtpPacket(0, 30001, 0, 1), 0.0)  # confirmed: a restart
    assert stats.base_sequence == 30001
    assert stats.received == 1


def test_reception_restarts_on_a_new_ssrc() -> None:
    stats = ReceptionStats(8000)
    for packet in _stream(10, 5):
        stats.update(packet, 0.0)
    # RFC 3550 A.1: a new source is on probation until its next packet
    # follows in sequence; one packet of it is dropped and changes nothing.
    assert not stats.update(RtpPacket(0, 7, 0, 2), 0.0)
    assert stats.ssrc == 1
    assert (stats.received, stats.expected) == (5, 5)
    assert not stats.update(RtpPacket(0, 9, 0, 2), 0.0)  # not the next one
    assert stats.update(RtpPacket(0, 10, 160, 2), 0.0)
    assert stats.ssrc == 2
    assert (stats.received, stats.expected) == (1, 1)


def test_reception_tells_late_packets_from_duplicates() -> None:
    stats = ReceptionStats(8000)
    packets = _stream(65534, 6)  # wraps after the second
    for index in (0, 1, 3, 2, 4, 2, 5, 3):  # 2 and 3 arrive late, then again
        stats.update(packets[index], index * 0.02)
    assert stats.expected == 6
    assert stats.received == 8
    assert stats.duplicates == 2
    assert stats.lost == 0
