"""Audit of the media handlers and DTMF reception.

Each test pins a behaviour that a softphone, an IVR test agent or a load tool
relies on and that the other media tests do not cover.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import anyio
import pytest

from trio_sip.media import g711
from trio_sip.media.dtmf import EventReceiver, event_payloads
from trio_sip.media.handlers import AudioClip, play, record
from trio_sip.media.offer_answer import MediaParams
from trio_sip.media.rtp import RtpPacket
from trio_sip.media.session import MediaSession
from trio_sip.message.sdp import STATIC_PAYLOAD_TYPES, Direction

HOST = "127.0.0.1"
PCMU = STATIC_PAYLOAD_TYPES[0]
PCMA = STATIC_PAYLOAD_TYPES[8]
#: Seconds (virtual) a test waits for media before it fails.
WAIT_BOUND = 60.0


def _sine(count: int) -> bytes:
    return g711.pcm_from_samples(
        [round(9000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(count)]
    )


def _read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        return wav.readframes(wav.getnframes())


# --- RFC 4733 reception ---------------------------------------------------------


def test_a_late_packet_of_the_previous_event_is_not_a_new_digit() -> None:
    # RFC 4733 2.5.2.1: all packets of one event carry its start timestamp, and
    # the end packet is sent three times (2.5.1.4). A retransmitted end of
    # digit "1" that the network delivers after digit "2" has started belongs
    # to the "1" already reported: neither digit is pressed again.
    receiver = EventReceiver()
    first = [event for event, _ in event_payloads("1", 480, 160)]
    second = [event for event, _ in event_payloads("2", 480, 160)]
    stream = [(1000, event) for event in first[:-1]]
    stream += [(2000, second[0]), (1000, first[-1])]  # the late end of "1"
    stream += [(2000, event) for event in second[1:]]
    digits = [receiver.feed(stamp, event.to_bytes()) for stamp, event in stream]
    assert [d for d in digits if d is not None] == ["1", "2"]


# --- play -------------------------------------------------------------------------


async def _play_and_switch(
    switch: MediaParams, count_before: int, count_after: int
) -> tuple[list[RtpPacket], bytes]:
    """Play a long L16 clip from a to b, apply ``switch`` to a mid-way, return b's packets."""
    pcm = _sine(8000)
    got: list[RtpPacket] = []
    async with (
        MediaSession(HOST) as a,
        MediaSession(HOST) as b,
        anyio.create_task_group() as tg,
    ):
        a.remote = b.local_address
        tg.start_soon(play, a, AudioClip("L16", pcm))
        with anyio.fail_after(WAIT_BOUND):
            async for packet in b.receive():
                got.append(packet)
                if len(got) == count_before:
                    a.apply(switch)
                if len(got) == count_before + count_after:
                    break
        tg.cancel_scope.cancel()
    return got, pcm


def _params(codec: object, ptime: int = 20) -> MediaParams:
    return MediaParams(None, codec, 101, Direction.SENDRECV, ptime, 0)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_play_follows_a_codec_change_of_the_session() -> None:
    # A re-INVITE (hold, resume) may settle on another codec while music on
    # hold plays: each packet must carry audio in the law its payload type
    # names (RFC 3551 section 6), not the law the clip was converted to at
    # the start, nor the frame already waiting for its slot when the codec
    # changes (its payload type is the one it was encoded for).
    got, pcm = await _play_and_switch(_params(PCMA), 3, 6)
    assert [p.payload_type for p in got[:3]] == [0, 0, 0]
    assert {p.payload_type for p in got[-5:]} == {8}
    start = got[0].timestamp
    wrong = []
    for packet in got:
        offset = 2 * ((packet.timestamp - start) & 0xFFFFFFFF)
        encoding = "PCMU" if packet.payload_type == 0 else "PCMA"
        if packet.payload != g711.encode(encoding, pcm[offset : offset + 320]):
            wrong.append(packet.sequence)
    assert wrong == []


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_play_follows_a_ptime_change_of_the_session() -> None:
    # A new a=ptime makes each packet carry more samples (RFC 3264 section 5,
    # RFC 8866 6.4); the timestamps advance by 240 per packet, so a frame of
    # 160 samples would leave a gap of 80 in every packet.
    got, pcm = await _play_and_switch(_params(PCMU, 30), 3, 6)
    assert [len(p.payload) for p in got[-4:]] == [240] * 4
    start = got[0].timestamp
    for packet in got[-4:]:
        offset = 2 * ((packet.timestamp - start) & 0xFFFFFFFF)
        assert packet.payload == g711.ulaw_encode(pcm[offset : offset + 480])


# --- record -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_record_keeps_recording_a_new_source(tmp_path: Path) -> None:
    # A new SSRC (RFC 3550 section 8: a sender that restarted, a B2BUA that
    # switched legs) has its own random timestamp origin (section 5.1). Here
    # it lands a second behind the old stream's: its packets are not late
    # packets of the old source, and must reach the recording rather than be
    # dropped until the new clock catches up with the old one.
    path = tmp_path / "switch.wav"
    old, new = b"\x80" * 160, b"\x10" * 160
    async with (
        anyio.create_task_group() as tg,
        MediaSession(HOST) as b,
        await anyio.create_udp_socket(local_host=HOST) as raw,
    ):
        tg.start_soon(record, b, path)
        packets = [RtpPacket(0, 1 + i, 1_000_000 + 160 * i, 1111, old) for i in range(3)]
        # The first packet of the new source is on probation (RFC 3550 A.1)
        # and dropped by the session; the next ones are believed.
        packets += [RtpPacket(0, 500 + i, 992_000 + 160 * i, 2222, new) for i in range(4)]
        for packet in packets:
            await raw.sendto(packet.to_bytes(), HOST, b.local_port)
            await anyio.sleep(0.02)
        with anyio.fail_after(WAIT_BOUND):
            while (  # noqa: ASYNC110 - the count is only in statistics()
                b.statistics().remote_ssrc != 2222 or b.statistics().packets_received < 3
            ):
                await anyio.sleep(0.01)
    pcm = _read_wav(path)
    assert pcm == g711.ulaw_decode(old) * 3 + g711.ulaw_decode(new) * 3


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_record_follows_a_timestamp_restart_of_the_same_source(tmp_path: Path) -> None:
    # Some PBXes re-originate the timestamp when they re-bridge a call but
    # keep the SSRC. A jump back by minutes is not a late packet (those are
    # a few packet times old): as for a jump forward beyond the gap that is
    # filled, the recording carries on with the new timing.
    path = tmp_path / "restart.wav"
    old, new = b"\x80" * 160, b"\x10" * 160
    async with (
        anyio.create_task_group() as tg,
        MediaSession(HOST) as b,
        await anyio.create_udp_socket(local_host=HOST) as raw,
    ):
        tg.start_soon(record, b, path)
        packets = [RtpPacket(0, 1 + i, 9_000_000 + 160 * i, 1111, old) for i in range(3)]
        packets += [RtpPacket(0, 4 + i, 8000 + 160 * i, 1111, new) for i in range(3)]
        for packet in packets:
            await raw.sendto(packet.to_bytes(), HOST, b.local_port)
            await anyio.sleep(0.02)
        with anyio.fail_after(WAIT_BOUND):
            while b.statistics().packets_received < 6:  # noqa: ASYNC110 - only in statistics()
                await anyio.sleep(0.01)
    pcm = _read_wav(path)
    assert pcm == g711.ulaw_decode(old) * 3 + g711.ulaw_decode(new) * 3
