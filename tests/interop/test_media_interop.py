"""SIPp plays RTP from a pcap to ``trio-sip answer --media record:FILE``.

The test writes its own capture (pcap global header, then Ethernet, IPv4,
UDP and RTP headers around 2 s of a 1 kHz tone in PCMA, 100 packets 20 ms
apart) into SIPp's working directory; the scenario ``uac_pcap_tone.xml``
offers PCMA, plays it with ``<exec play_pcap_audio>`` once answered and
hangs up. The WAV that ``answer`` records is then checked by its content:
its length, and that 1 kHz dominates it (Goertzel).

A late offer (``uac_late_offer.xml``): ``answer`` offers in its 200 and
reads SIPp's answer from the ACK, then sends its RTP there.

DTMF in SIP INFO (``uac_info_dtmf.xml``): ``answer`` prints the digits of
SIPp's ``application/dtmf-relay`` and ``application/dtmf`` INFO requests and
refuses one without a digit with 400.

Found here (SIPp 3.6.1): play_pcap_audio rewrites the addresses and ports of
the captured packets to its media port and the answer's ``c=``/``m=``, so the
capture's own addresses do not matter; it sends them on a raw socket
(``socket(AF_INET, SOCK_RAW, IPPROTO_UDP)``), so SIPp must run as root or with
CAP_NET_RAW: as another user it logs "Can't create raw IPv4 socket (need to
run as root?)" and no RTP leaves. The test is skipped where raw sockets are
refused. SIPp looks for the file next to the scenario first, then in its
working directory, where the test writes it.
"""

from __future__ import annotations

import math
import random
import socket
import struct
import wave
from collections.abc import Sequence
from pathlib import Path

import pytest

from cli_process import trio_sip
from trio_sip.media import alaw_encode

from .peers import SCENARIOS, Address, run_sipp

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

RATE = 8000
FRAME = 160  # samples in 20 ms
TONE = 1000.0
SECONDS = 2.0


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path: Path, payloads: Sequence[bytes], payload_type: int) -> None:
    """A libpcap file of RTP packets, one per payload, 20 ms apart (Ethernet link type)."""
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for index, payload in enumerate(payloads):
        rtp = struct.pack(
            "!BBHII", 0x80, payload_type | (0x80 if index == 0 else 0), index + 1,
            index * FRAME, 0x5EED,
        ) + payload  # fmt: skip
        udp = struct.pack("!HHHH", 40000, 50000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), index, 0, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        frame = bytes(6) + bytes(6) + b"\x08\x00" + ip + udp
        micros = index * 20_000
        records.append(
            struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        )
        records.append(frame)
    path.write_bytes(b"".join(records))


def tone_frames(frequency: float, seconds: float) -> list[bytes]:
    """PCMA frames of a sine at ``frequency`` (peak 10000 of 32767)."""
    count = round(seconds * RATE)
    pcm = b"".join(
        struct.pack("<h", round(10000 * math.sin(2 * math.pi * frequency * n / RATE)))
        for n in range(count)
    )
    data = alaw_encode(pcm)
    return [data[i : i + FRAME] for i in range(0, len(data), FRAME)]


def rtp_stats(out: str) -> dict[str, str]:
    """The fields of the one ``rtp:`` line of a command's output."""
    found = [line for line in out.splitlines() if line.startswith("rtp: ")]
    assert len(found) == 1, out
    return dict(part.split("=", 1) for part in found[0].split()[1:])


@pytest.fixture
def raw_sockets() -> None:
    """Skip unless this process (and so SIPp, its child) may open a raw socket.

    A fixture, so that the skip happens before the event loop starts.
    """
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError:
        pytest.skip("SIPp's play_pcap_audio needs raw sockets (root or CAP_NET_RAW)")


def media_ports() -> int:
    """The first of four free UDP ports on loopback, for SIPp's -mp.

    SIPp binds the port, the next one, and the two after them for video, and
    refuses to run if any is taken; so four in a row are checked, below the
    usual range of ephemeral ports, where the system's own choices (RTP of
    the trio-sip process, for one) cannot land.
    """
    rng = random.Random()
    for _ in range(100):
        first = rng.randrange(20000, 32000, 2)
        sockets = []
        try:
            for port in range(first, first + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise AssertionError("no four free UDP ports in a row")


def power(samples: Sequence[int], frequency: float) -> float:
    """The Goertzel power of ``samples`` at ``frequency``."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / RATE)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coefficient * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coefficient * s1 * s2


@pytest.mark.usefixtures("raw_sockets")
async def test_sipp_uac_pcap_is_received_and_recorded(
    sipp: str, anyio_backend_name: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    write_pcap(workdir / "tone.pcap", tone_frames(TONE, SECONDS), payload_type=8)
    recording = tmp_path / "recorded.wav"
    async with trio_sip(
        "--backend", anyio_backend_name, "answer", "--listen", "udp:127.0.0.1:0",
        "--media", f"record:{recording}",
    ) as answer:  # fmt: skip
        result = await run_sipp(
            SCENARIOS / "uac_pcap_tone.xml",
            Address("127.0.0.1", answer.port()),
            calls=1,
            global_timeout=15,
            workdir=workdir,
            # SIPp's media port (the source of the RTP it plays): free, not 6000.
            extra_args=["-mp", str(media_ports())],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert answer.returncode == 0, answer.err
    stats = rtp_stats(answer.out)
    assert stats["codec"] == "PCMA"
    assert stats["packets_received"] == str(round(SECONDS * RATE / FRAME)), answer.out
    assert stats["packets_lost"] == "0"
    with wave.open(str(recording), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        frames = wav.readframes(wav.getnframes())
    samples = [value for (value,) in struct.iter_unpack("<h", frames)]
    assert SECONDS - 0.05 <= len(samples) / RATE <= SECONDS + 0.2
    # Check a stretch in the middle: 1 kHz towards the edges of the band and
    # near it is well below the tone.
    middle = samples[len(samples) // 4 : len(samples) // 4 + 2000]
    at_tone = power(middle, TONE)
    for other in (300.0, 500.0, 800.0, 1200.0, 1500.0, 2000.0, 3000.0):
        assert power(middle, other) * 100 < at_tone, other
    # And the level is the tone's, not noise: RMS near 10000 / sqrt(2).
    rms = math.sqrt(sum(s * s for s in middle) / len(middle))
    assert 6000 < rms < 8000, rms


async def test_late_offer_answered_in_the_ack_sends_rtp_there(
    sipp: str, anyio_backend_name: str, tmp_path: Path
) -> None:
    # answer plays a tone (looped) from its 200's offer on; where to is only
    # known from SIPp's answer in the ACK. SIPp echoes what reaches its media
    # port (-rtp_echo), so packets come back only if they went to the ACK's m=.
    tone = tmp_path / "tone.pcma"
    tone.write_bytes(b"".join(tone_frames(TONE, 0.2)))
    media_port = media_ports()
    async with trio_sip(
        "--backend", anyio_backend_name, "answer", "--listen", "udp:127.0.0.1:0",
        "--media", f"play:{tone}",
    ) as answer:  # fmt: skip
        result = await run_sipp(
            SCENARIOS / "uac_late_offer.xml",
            Address("127.0.0.1", answer.port()),
            calls=1,
            global_timeout=10,
            extra_args=["-mp", str(media_port), "-rtp_echo"],
            program=sipp,
        )
    assert result.ok, result.describe()
    assert answer.returncode == 0, answer.err
    stats = rtp_stats(answer.out)
    assert stats["remote"] == f"127.0.0.1:{media_port}", answer.out
    assert stats["codec"] == "PCMU"
    # 1.5 s of talk: about 75 packets each way.
    assert int(stats["packets_sent"]) >= 50, stats
    assert int(stats["packets_received"]) >= 50, stats
    assert stats["packets_lost"] == "0"


async def test_dtmf_in_sip_info_from_sipp_is_printed_by_answer(
    sipp: str, anyio_backend_name: str
) -> None:
    # uac_info_dtmf.xml: Signal=5 (dtmf-relay) and # (application/dtmf),
    # each 200; a Signal that is no digit, 400 (SIPp checks the statuses).
    async with trio_sip(
        "--backend", anyio_backend_name, "answer", "--listen", "udp:127.0.0.1:0"
    ) as answer:  # fmt: skip
        result = await run_sipp(
            SCENARIOS / "uac_info_dtmf.xml",
            Address("127.0.0.1", answer.port()),
            calls=1,
            global_timeout=10,
            program=sipp,
        )
    assert result.ok, result.describe()
    assert answer.returncode == 0, answer.err
    digits = [line.split()[1] for line in answer.out.splitlines() if line.startswith("dtmf: ")]
    assert digits == ["5", "#"], answer.out
