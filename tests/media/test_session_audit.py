"""Audit of MediaSession's send path across a re-INVITE applied mid-stream.

A frame already handed to the session (asleep until its slot, or queued
behind a digit) was cut and encoded under the old packet time and codec; the
packet that carries it must say so. Each test pins what RFC 3550 and RFC 3551
require of that packet and that the other media tests do not cover.
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute, UDPSocket

from trio_sip.media import g711
from trio_sip.media.dtmf import dtmf_tone
from trio_sip.media.offer_answer import MediaParams
from trio_sip.media.rtp import RtpPacket
from trio_sip.media.session import MediaSession
from trio_sip.message.sdp import STATIC_PAYLOAD_TYPES, Direction, RtpMap

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

HOST = "127.0.0.1"
PCMU = STATIC_PAYLOAD_TYPES[0]
PCMA = STATIC_PAYLOAD_TYPES[8]
LAWS = {0: "PCMU", 8: "PCMA"}
#: Seconds (virtual) a test waits for media before it fails.
WAIT_BOUND = 60.0


def _sine(count: int) -> bytes:
    return g711.pcm_from_samples(
        [round(9000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(count)]
    )


def _params(session: MediaSession, codec: RtpMap = PCMU, ptime: int = 20) -> MediaParams:
    """What a re-INVITE settles on: same remote, maybe a new codec or ptime."""
    return MediaParams(session.remote, codec, 101, Direction.SENDRECV, ptime, 0)


@asynccontextmanager
async def _sender(**options: object) -> AsyncIterator[tuple[MediaSession, UDPSocket]]:
    """A session sending to a bare socket, which sees every packet, events too."""
    async with (
        MediaSession(HOST, **options) as session,  # type: ignore[arg-type]
        await anyio.create_udp_socket(local_host=HOST) as sink,
    ):
        session.remote = (HOST, sink.extra(SocketAttribute.local_port))
        yield session, sink


async def _capture(sink: UDPSocket, count: int, into: list[RtpPacket]) -> None:
    with anyio.fail_after(WAIT_BOUND):
        while len(into) < count:
            data, _ = await sink.receive()
            into.append(RtpPacket.parse(data))


def _offsets(packets: list[RtpPacket]) -> list[int]:
    start = packets[0].timestamp
    return [(p.timestamp - start) & 0xFFFFFFFF for p in packets]


async def _in_flight_then_apply(a: MediaSession, frame: bytes, switch: MediaParams) -> None:
    """Send 3 frames, leave a 4th waiting for its slot, then apply ``switch``."""
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            await a.send(frame)
        tg.start_soon(a.send, frame)
        # The 4th frame's slot is at 60 ms: at 50 ms it is asleep in send().
        await anyio.sleep(0.01)
        assert a.statistics().packets_sent == 3
        a.apply(switch)


async def test_a_frame_waiting_for_its_slot_keeps_its_timestamp_across_a_ptime_change() -> None:
    # RFC 3550 5.1: the timestamp is the sampling instant of the packet's
    # first octet, so each packet's timestamp is the previous one's plus the
    # samples it carried. The frame asleep until its slot when a=ptime:30 is
    # applied holds 160 samples of the old packet time; the new 240-sample
    # frames follow it, with neither an overlap nor a gap.
    got: list[RtpPacket] = []
    async with _sender() as (a, sink), anyio.create_task_group() as tg:
        tg.start_soon(_capture, sink, 6, got)
        await _in_flight_then_apply(a, b"\xff" * 160, _params(a, ptime=30))
        assert a.samples_per_frame == 240
        await a.send(b"\xff" * 240)
        await a.send(b"\xff" * 240)
    assert [len(p.payload) for p in got] == [160] * 4 + [240] * 2
    assert _offsets(got) == [0, 160, 320, 480, 640, 880]


async def test_an_event_waiting_for_its_slot_starts_where_the_audio_ended() -> None:
    # RFC 4733 2.5.1.1: every packet of an event carries the event's start as
    # timestamp. The first event packet asleep until its slot when the packet
    # time changes still starts right after the audio sent before it.
    got: list[RtpPacket] = []
    async with _sender() as (a, sink), anyio.create_task_group() as tg:
        tg.start_soon(_capture, sink, 3 + 7, got)  # audio, then 4 event packets + 3 ends
        for _ in range(3):
            await a.send(b"\xff" * 160)
        tg.start_soon(a.send_dtmf, "5")
        await anyio.sleep(0.01)
        a.apply(_params(a, ptime=30))
    assert [p.payload_type for p in got] == [0] * 3 + [101] * 7
    assert set(_offsets(got)[3:]) == {480}


async def test_a_frame_waiting_for_its_slot_keeps_its_payload_type_across_a_codec_change() -> None:
    # RFC 3551 section 6 / RFC 3550 5.1: the payload type names the format of
    # the payload. The frame asleep until its slot when a re-INVITE switches
    # PCMU to PCMA was encoded in mu-law: it goes out as PCMU, and the frames
    # encoded after the switch as PCMA.
    pcm = _sine(160)
    got: list[RtpPacket] = []
    async with _sender() as (a, sink), anyio.create_task_group() as tg:
        tg.start_soon(_capture, sink, 6, got)
        await _in_flight_then_apply(a, a.encode(pcm), _params(a, PCMA))
        await a.send(a.encode(pcm))
        await a.send(a.encode(pcm))
    assert [p.payload_type for p in got] == [0] * 4 + [8] * 2
    for packet in got:
        assert packet.payload == g711.encode(LAWS[packet.payload_type], pcm)


async def test_a_frame_waiting_behind_a_digit_keeps_its_payload_type_across_a_codec_change() -> (
    None
):
    # The same for a frame that waits for the pacing lock while a digit is
    # sent: it was encoded when send() was called, in the law of that moment.
    pcm = _sine(160)
    got: list[RtpPacket] = []
    async with _sender() as (a, sink), anyio.create_task_group() as tg:
        tg.start_soon(_capture, sink, 1 + 7 + 1, got)  # audio, event (4 + 3 ends), audio
        await a.send(a.encode(pcm))
        tg.start_soon(a.send_dtmf, "7")  # its packets leave at 20 to 140 ms
        await anyio.sleep(0.005)
        tg.start_soon(a.send, a.encode(pcm))  # queued behind the digit
        await anyio.sleep(0.05)
        a.apply(_params(a, PCMA))
    audio = [p for p in got if p.payload_type != 101]
    assert len(audio) == 2
    for packet in audio:
        assert packet.payload == g711.encode(LAWS[packet.payload_type], pcm)


async def test_an_inband_digit_keeps_the_payload_type_it_was_encoded_in() -> None:
    # An in-band digit is synthesised in the codec of the moment it starts;
    # a codec change while it plays must not relabel its remaining packets
    # (RFC 3551 section 6), which would play them through the wrong law.
    got: list[RtpPacket] = []
    async with _sender(telephone_event=None) as (a, sink), anyio.create_task_group() as tg:
        tg.start_soon(_capture, sink, 5, got)
        tg.start_soon(a.send_dtmf, "9")  # 100 ms: 5 packets
        await anyio.sleep(0.03)
        a.apply(_params(a, PCMA))
    offsets = _offsets(got)
    assert offsets == [0, 160, 320, 480, 640]
    for packet, offset in zip(got, offsets, strict=True):
        tone = g711.pcm_from_samples(dtmf_tone("9", 160, start=offset))
        assert packet.payload == g711.encode(LAWS[packet.payload_type], tone)


async def test_closing_takes_the_packets_that_arrived_before_it() -> None:
    # The end of a call (a BYE) may be handled before the RTP that reached
    # the socket just ahead of it was read: those packets are the call's,
    # and count and reach receive() when the session closes.
    async with MediaSession(HOST) as session:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind((HOST, 0))
            for sequence in range(3):
                packet = RtpPacket(0, sequence, 160 * sequence, 0xA11CE, payload=b"\x01" * 160)
                peer.sendto(packet.to_bytes(), session.local_address)
            session.close()  # before the receiving task ran: nothing read yet
        assert session.statistics().packets_received == 3
        assert [p.sequence async for p in session.receive()] == [0, 1, 2]
