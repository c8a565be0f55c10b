"""MediaSession and the handlers over loopback, on both backends, in virtual time."""

from __future__ import annotations

import itertools
import math
import os
import socket
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from trio_sip.errors import TransportError
from trio_sip.media import g711
from trio_sip.media.dtmf import TelephoneEvent
from trio_sip.media.handlers import AudioClip, echo, play, record, silence
from trio_sip.media.offer_answer import (
    answer_offer,
    hold_offer,
    make_offer,
    read_answer,
    resume_offer,
)
from trio_sip.media.rtp import RtpPacket
from trio_sip.media.session import MediaSession, PortRange
from trio_sip.message.sdp import STATIC_PAYLOAD_TYPES, Direction

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

#: Seconds (virtual) a test waits for media before it fails.
WAIT_BOUND = 60.0
HOST = "127.0.0.1"
PCMA = STATIC_PAYLOAD_TYPES[8]


@asynccontextmanager
async def pair(**options: object) -> AsyncIterator[tuple[MediaSession, MediaSession]]:
    """Two sessions on loopback that know each other's address."""
    async with (
        MediaSession(HOST, **options) as a,  # type: ignore[arg-type]
        MediaSession(HOST, **options) as b,  # type: ignore[arg-type]
    ):
        a.remote = b.local_address
        b.remote = a.local_address
        yield a, b


async def collect(session: MediaSession, count: int) -> list[tuple[float, RtpPacket]]:
    got: list[tuple[float, RtpPacket]] = []
    with anyio.fail_after(WAIT_BOUND):
        async for packet in session.receive():
            got.append((anyio.current_time(), packet))
            if len(got) == count:
                break
    return got


def frames(count: int, tag: int = 0) -> list[bytes]:
    return [bytes([(tag + i) & 0xFF]) * 160 for i in range(count)]


async def test_hundred_packets_each_way_without_loss_at_20_ms() -> None:
    async with pair() as (a, b), anyio.create_task_group() as tg:
        results: dict[str, list[tuple[float, RtpPacket]]] = {}

        async def sender(session: MediaSession, payloads: list[bytes]) -> None:
            for payload in payloads:
                await session.send(payload)

        async def receiver(name: str, session: MediaSession) -> None:
            results[name] = await collect(session, 100)

        start = anyio.current_time()
        tg.start_soon(receiver, "a", a)
        tg.start_soon(receiver, "b", b)
        tg.start_soon(sender, a, frames(100, 0))
        tg.start_soon(sender, b, frames(100, 100))
    for name, sender_session, tag in (("b", a, 0), ("a", b, 100)):
        got = results[name]
        packets = [p for _, p in got]
        assert [p.payload for p in packets] == frames(100, tag)
        assert {p.ssrc for p in packets} == {sender_session.statistics().ssrc}
        assert all((q.sequence - p.sequence) & 0xFFFF == 1 for p, q in itertools.pairwise(packets))
        assert all(
            (q.timestamp - p.timestamp) & 0xFFFFFFFF == 160 for p, q in itertools.pairwise(packets)
        )
        times = [t - start for t, _ in got]
        assert times == pytest.approx([i * 0.02 for i in range(100)], abs=1e-6)
        assert packets[0].marker
        assert not any(p.marker for p in packets[1:])
    for session in (a, b):
        stats = session.statistics()
        assert stats.packets_sent == 100
        assert stats.packets_received == 100
        assert stats.packets_expected == 100
        assert stats.packets_lost == 0
        assert stats.jitter == pytest.approx(0.0, abs=1e-9)
        assert stats.dropped == 0


async def test_pacing_does_not_drift_and_skips_a_pause() -> None:
    got: list[tuple[float, RtpPacket]] = []

    async def receiver(session: MediaSession) -> None:
        got.extend(await collect(session, 8))

    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(receiver, b)
        start = anyio.current_time()
        for payload in frames(5):
            await a.send(payload)
            await anyio.sleep(0.007)  # work between frames must not stretch the period
        await anyio.sleep(0.1)
        for payload in frames(3, 5):
            await a.send(payload)
    times = [round(t - start, 6) for t, _ in got]
    assert times == pytest.approx([0, 0.02, 0.04, 0.06, 0.08, 0.2, 0.22, 0.24], abs=1e-6)
    stamps = [p.timestamp - got[0][1].timestamp for _, p in got]
    # Timestamps follow the clock: the pause is 6 skipped slots of silence.
    assert stamps == [0, 160, 320, 480, 640, 1600, 1760, 1920]
    assert [p.marker for _, p in got] == [True, False, False, False, False, True, False, False]
    assert a.statistics().skipped_slots == 5


async def test_sessions_bind_even_ports_and_reserve_rtcp() -> None:
    async with pair() as (a, b):
        for session in (a, b):
            assert session.local_port % 2 == 0
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with probe, pytest.raises(OSError, match="in use"):
                probe.bind((HOST, session.local_port + 1))


def _free_even_block(size: int) -> int:
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with probe:
            probe.bind((HOST, 0))
            base: int = probe.getsockname()[1] & ~1
        if base + size > 65535:
            continue
        held = []
        try:
            for port in range(base, base + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind((HOST, port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError("no free block of ports")


async def test_ports_come_from_the_configured_range() -> None:
    base = _free_even_block(4)
    ports = PortRange(base, base + 3)
    async with MediaSession(HOST, port_range=ports) as a, MediaSession(HOST, port_range=ports) as b:
        assert {a.local_port, b.local_port} == {base, base + 2}
        with pytest.raises(TransportError, match="no free even/odd port pair"):
            async with MediaSession(HOST, port_range=ports):
                pass
    # Closed: the range can be used again.
    async with MediaSession(HOST, port_range=ports) as again:
        assert again.local_port in (base, base + 2)


def test_port_range_needs_a_pair() -> None:
    with pytest.raises(ValueError, match="pair"):
        PortRange(5001, 5002)
    assert list(PortRange(5001, 5006).rtp_ports()) == [5002, 5004]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_every_socket_is_closed_after_the_session() -> None:
    before = _open_fds()
    ports = []
    for _ in range(5):
        async with pair() as (a, b):
            ports += [a.local_port, b.local_port]
            await a.send(b"\xff" * 160)
            await collect(b, 1)
            assert _open_fds() >= before + 4
    assert _open_fds() == before
    for port in ports:
        for offset in (0, 1):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with probe:
                probe.bind((HOST, port + offset))  # free again


async def test_receive_ends_when_the_session_closes() -> None:
    async with MediaSession(HOST) as session:
        stream = session.receive()
        digits = session.dtmf()
    with anyio.fail_after(1):
        assert [p async for p in stream] == []
        assert [d async for d in digits] == []


async def test_symmetric_rtp_answers_where_packets_come_from() -> None:
    async with MediaSession(HOST) as a, MediaSession(HOST) as b:
        a.remote = b.local_address
        assert b.statistics().remote is None
        await b.send(b"\x00" * 160)  # no address yet: nothing goes out, nothing numbered
        assert b.statistics().packets_sent == 0
        await a.send(b"\x01" * 160)
        await collect(b, 1)
        assert b.remote == a.local_address
        await b.send(b"\x02" * 160)
        ((_, packet),) = await collect(a, 1)
        assert packet.payload == b"\x02" * 160


async def test_one_packet_of_a_stranger_does_not_take_the_stream() -> None:
    # RFC 3550 A.1 probation: a packet of another SSRC from another address
    # (stray, or forged by anyone who can reach the port) is dropped, and a
    # symmetric session goes on sending to its peer; a second packet in
    # sequence (a peer that really changed, a re-INVITE to a new media
    # server) is believed.
    async with MediaSession(HOST) as a, MediaSession(HOST) as b:
        a.remote = b.local_address
        await a.send(b"\x01" * 160)
        await collect(b, 1)
        assert b.remote == a.local_address
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind((HOST, 0))
            for sequence in (500, 700, 701):
                forged = RtpPacket(0, sequence, 80_000, 0x5EED, payload=b"\x07" * 160)
                stranger.sendto(forged.to_bytes(), b.local_address)
                if sequence == 500:
                    # Whatever the stranger sent first, the next real packet
                    # from the peer still arrives and the stream stays its.
                    await a.send(b"\x02" * 160)
                    ((_, packet),) = await collect(b, 1)
                    assert packet.payload == b"\x02" * 160
                    assert b.remote == a.local_address
            ((_, taken),) = await collect(b, 1)
            assert (taken.sequence, taken.ssrc) == (701, 0x5EED)
            assert b.remote == stranger.getsockname()


async def test_a_held_session_sends_nothing() -> None:
    async with pair() as (a, b):
        a.direction = Direction.RECVONLY
        for payload in frames(3):
            await a.send(payload)
        a.direction = Direction.SENDRECV
        await a.send(b"\x09" * 160)
        ((_, packet),) = await collect(b, 1)
        assert packet.payload == b"\x09" * 160
        assert a.statistics().packets_sent == 1


async def test_negotiated_params_drive_the_sessions() -> None:
    async with MediaSession(HOST) as a, MediaSession(HOST) as b:
        offer = make_offer(HOST, a.local_port, codecs=[8, 0], telephone_event=96)
        answer, answered = answer_offer(offer, HOST, b.local_port)
        assert answered is not None
        b.apply(answered)
        offered = read_answer(offer, answer)
        assert offered is not None
        a.apply(offered)
        assert a.codec == PCMA
        assert a.telephone_event == b.telephone_event == 96
        await a.send(g711.silence("PCMA", 160))
        await a.send_dtmf("7")
        ((_, packet),) = await collect(b, 1)
        assert packet.payload_type == 8
        with anyio.fail_after(WAIT_BOUND):
            assert await anext(aiter(b.dtmf())) == "7"


async def test_rfc4733_digits_reach_the_other_side() -> None:
    async with pair() as (a, b):
        got: list[str] = []
        await a.send_dtmf("0123456789*#ABCD", duration=0.06, gap=0.04)
        with anyio.fail_after(WAIT_BOUND):
            async for digit in b.dtmf():
                got.append(digit)
                if len(got) == 16:
                    break
        assert "".join(got) == "0123456789*#ABCD"
        assert a.statistics().dtmf_sent == 16
        assert b.statistics().dtmf_received == 16


async def test_rfc4733_packets_on_the_wire() -> None:
    async with (
        MediaSession(HOST) as a,
        await anyio.create_udp_socket(local_host=HOST) as raw,
    ):
        a.remote = (HOST, raw.extra(anyio.abc.SocketAttribute.local_port))
        arrivals: list[tuple[float, RtpPacket]] = []

        async def receiver() -> None:
            with anyio.fail_after(WAIT_BOUND):
                while len(arrivals) < 8:
                    data, _ = await raw.receive()
                    arrivals.append((anyio.current_time(), RtpPacket.parse(data)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await a.send(b"\xff" * 160)
            await a.send_dtmf("5", duration=0.1, volume=7)
    audio = arrivals[0][1]
    events = [p for _, p in arrivals[1:]]
    assert {p.payload_type for p in events} == {101}
    assert [TelephoneEvent.parse(p.payload) for p in events] == [
        TelephoneEvent(5, False, 7, 160),
        TelephoneEvent(5, False, 7, 320),
        TelephoneEvent(5, False, 7, 480),
        TelephoneEvent(5, False, 7, 640),
        TelephoneEvent(5, True, 7, 800),
        TelephoneEvent(5, True, 7, 800),
        TelephoneEvent(5, True, 7, 800),
    ]
    # One event: one timestamp (its start, the slot after the audio frame),
    # consecutive sequence numbers, the marker on the first packet only.
    assert {p.timestamp for p in events} == {(audio.timestamp + 160) & 0xFFFFFFFF}
    assert [(p.sequence - audio.sequence) & 0xFFFF for p in events] == list(range(1, 8))
    assert [p.marker for p in events] == [True] + [False] * 6
    times = [t - arrivals[0][0] for t, _ in arrivals]
    assert times == pytest.approx([i * 0.02 for i in range(8)], abs=1e-6)


@pytest.mark.parametrize("codec", [STATIC_PAYLOAD_TYPES[0], PCMA], ids=["PCMU", "PCMA"])
async def test_inband_digits_are_detected(codec: object) -> None:
    async with pair(codec=codec, inband_dtmf=True) as (a, b), anyio.create_task_group() as tg:
        got: list[str] = []

        async def drain() -> None:
            async for _ in b.receive():
                pass

        tg.start_soon(drain)
        await a.send_dtmf("159#*0D", inband=True)
        with anyio.fail_after(WAIT_BOUND):
            async for digit in b.dtmf():
                got.append(digit)
                if len(got) == 7:
                    break
        tg.cancel_scope.cancel()
    assert "".join(got) == "159#*0D"


async def test_echo_returns_what_it_gets() -> None:
    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(echo, b)
        sent = frames(20, 40)
        for payload in sent:
            await a.send(payload)
        got = await collect(a, 20)
        tg.cancel_scope.cancel()
    assert [p.payload for _, p in got] == sent


async def test_echo_converts_the_other_law() -> None:
    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(echo, b)  # b sends PCMU
        a.codec = PCMA
        tone = g711.pcm_from_samples([1000] * 160)
        await a.send(g711.alaw_encode(tone))
        ((_, packet),) = await collect(a, 1)
        tg.cancel_scope.cancel()
    assert packet.payload_type == 0
    assert packet.payload == g711.ulaw_encode(g711.alaw_decode(g711.alaw_encode(tone)))


async def test_silence_sends_silent_frames() -> None:
    async with pair(codec=PCMA) as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(silence, a)
        got = await collect(b, 5)
        tg.cancel_scope.cancel()
    assert {p.payload for _, p in got} == {b"\xd5" * 160}


def _sine(count: int) -> list[int]:
    return [round(9000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(count)]


def _read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        return shape, wav.readframes(wav.getnframes())


async def wait_received(session: MediaSession, count: int) -> None:
    with anyio.fail_after(WAIT_BOUND):
        # Polling: the count is only in statistics(), and the receive queue
        # belongs to the handler under test.
        while session.statistics().packets_received < count:  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def test_record_writes_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    sent = g711.ulaw_encode(g711.pcm_from_samples(_sine(50 * 160)))
    async with anyio.create_task_group() as tg, pair() as (a, b):
        tg.start_soon(record, b, path)
        for i in range(50):
            await a.send(sent[i * 160 : (i + 1) * 160])
        await wait_received(b, 50)
        # The session closed: record() writes what was received and returns.
    shape, pcm = _read_wav(path)
    assert shape == (1, 2, 8000)
    assert pcm == g711.ulaw_decode(sent)


async def test_record_fills_lost_packets_with_silence(tmp_path: Path) -> None:
    path = tmp_path / "lossy.wav"
    async with (
        anyio.create_task_group() as tg,
        MediaSession(HOST) as b,
        await anyio.create_udp_socket(local_host=HOST) as raw,
    ):
        tg.start_soon(record, b, path)
        for seq, stamp in ((1, 0), (2, 160), (4, 480)):  # sequence 3 is lost
            packet = RtpPacket(0, seq, stamp, 1234, b"\x80" * 160)
            await raw.sendto(packet.to_bytes(), HOST, b.local_port)
        await wait_received(b, 3)
        assert b.statistics().packets_lost == 1
    _, pcm = _read_wav(path)
    loud = g711.ulaw_decode(b"\x80" * 160)
    assert pcm == loud * 2 + bytes(320) + loud


async def test_cancelled_record_leaves_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sent = g711.ulaw_encode(g711.pcm_from_samples(_sine(30 * 160)))
    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(record, b, path)
        for i in range(30):
            await a.send(sent[i * 160 : (i + 1) * 160])
        await wait_received(b, 30)
        tg.cancel_scope.cancel()
    shape, pcm = _read_wav(path)
    assert shape == (1, 2, 8000)
    # Cancelled at some point of the stream: what is there is its beginning.
    assert g711.ulaw_decode(sent).startswith(pcm)


async def test_play_loops() -> None:
    clip = AudioClip("PCMU", b"".join(frames(3, 7)))
    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(lambda: play(a, clip, loop=True))
        got = await collect(b, 8)
        tg.cancel_scope.cancel()
    assert [p.payload for _, p in got] == (frames(3, 7) * 3)[:8]


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("clip.wav", None),
        ("clip.pcma", lambda pcm: g711.alaw_encode(pcm)),
        ("clip.ulaw", lambda pcm: g711.ulaw_encode(pcm)),
    ],
)
async def test_play_a_file_once(
    tmp_path: Path, name: str, write: Callable[[bytes], bytes] | None
) -> None:
    pcm = g711.pcm_from_samples(_sine(400))  # 2.5 frames: the last one is padded
    path = tmp_path / name
    if write is None:
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(pcm)
    else:
        path.write_bytes(write(pcm))
    async with pair() as (a, b):
        # No fail_after here: the file is read in a worker thread, and a
        # virtual clock jumps ahead while it runs. Playing once is bounded.
        await play(a, path)
        got = await collect(b, 3)
        await anyio.sleep(0.2)
        assert a.statistics().packets_sent == 3
    payload = b"".join(p.payload for _, p in got)
    expected = g711.ulaw_encode(pcm) if write is None or "ulaw" in name else None
    if expected is None:
        expected = g711.ulaw_encode(g711.alaw_decode(g711.alaw_encode(pcm)))
    assert payload == expected + b"\xff" * 80


def test_wav_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    from trio_sip.media.handlers import load_audio

    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(8))
    with pytest.raises(ValueError, match="need mono 16-bit 8000 Hz"):
        load_audio(path)


async def test_a_new_ptime_keeps_timestamps_growing() -> None:
    got: list[tuple[float, RtpPacket]] = []

    async def receiver(session: MediaSession) -> None:
        got.extend(await collect(session, 4))

    async with pair() as (a, b), anyio.create_task_group() as tg:
        tg.start_soon(receiver, b)
        await a.send(b"\xff" * 160)
        await a.send(b"\xff" * 160)
        offer = make_offer(HOST, a.local_port, ptime=30)
        _, params = answer_offer(offer, HOST, 9)
        assert params is not None
        a.apply(replace(params, remote=b.local_address))
        assert a.samples_per_frame == 240
        await a.send(b"\xff" * 240)
        await a.send(b"\xff" * 240)
    start = got[0][1].timestamp
    assert [(p.timestamp - start) & 0xFFFFFFFF for _, p in got] == [0, 160, 320, 560]
    assert [round(t - got[0][0], 6) for t, _ in got] == [0, 0.02, 0.04, 0.07]


async def test_hold_and_resume_change_who_sends() -> None:
    async with MediaSession(HOST) as a, MediaSession(HOST) as b:
        offer = make_offer(HOST, a.local_port)
        answer, answered = answer_offer(offer, HOST, b.local_port)
        assert answered is not None
        b.apply(answered)
        offered = read_answer(offer, answer)
        assert offered is not None
        a.apply(offered)

        async def exchange() -> tuple[int, int]:
            before = (a.statistics().packets_received, b.statistics().packets_received)
            for _ in range(3):
                await a.send(b"\x01" * 160)
                await b.send(b"\x02" * 160)
            await anyio.sleep(0.1)
            return (
                a.statistics().packets_received - before[0],
                b.statistics().packets_received - before[1],
            )

        assert await exchange() == (3, 3)
        # A puts B on hold: A only sends, B only receives.
        held = hold_offer(offer)
        held_answer, b_params = answer_offer(held, HOST, b.local_port, previous=answer)
        assert b_params is not None
        b.apply(b_params)
        a_params = read_answer(held, held_answer)
        assert a_params is not None
        a.apply(a_params)
        assert (a.direction, b.direction) == (Direction.SENDONLY, Direction.RECVONLY)
        assert await exchange() == (0, 3)
        resumed = resume_offer(held)
        resumed_answer, b_params = answer_offer(resumed, HOST, b.local_port, previous=held_answer)
        assert b_params is not None
        b.apply(b_params)
        a_params = read_answer(resumed, resumed_answer)
        assert a_params is not None
        a.apply(a_params)
        assert await exchange() == (3, 3)
        # On hold B numbered nothing: no loss shows on A's side.
        assert a.statistics().packets_lost == 0


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_loopback() -> None:
    async with MediaSession("::1") as a, MediaSession("::1") as b:
        a.remote = b.local_address
        await a.send(b"\x05" * 160)
        ((_, packet),) = await collect(b, 1)
        assert packet.payload == b"\x05" * 160
        assert b.remote == a.local_address
        offer = make_offer("::1", a.local_port)
        assert offer.media[0].connection_address(offer) == "::1"
