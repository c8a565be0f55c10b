"""Media between two ``trio-sip`` processes over loopback, on the test's backend.

``trio-sip call --media play:FILE`` sends a 2 s WAV (100 packets of 20 ms)
to ``trio-sip answer --media echo``, which sends each one back: both
``rtp:`` lines count 100 packets each way and no loss. ``call --dtmf`` sends
digits as RFC 4733 events and as in-band tones (PCMU, PCMA); ``answer
--inband-dtmf`` prints each one it detects as a ``dtmf:`` line. An answerer
stopped in the middle of a call hangs up and still reports it.
"""

from __future__ import annotations

import itertools
import math
import socket
import struct
import sys
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from cli_process import Running, trio_sip
from trio_sip.cli import main

pytestmark = pytest.mark.anyio

# Bound of a call (starting and stopping a process: cli_process).
CALL = 30.0


@asynccontextmanager
async def answering(backend: str, *args: str) -> AsyncIterator[Running]:
    """Run ``trio-sip answer`` on loopback until the block ends, then SIGINT it."""
    async with trio_sip(
        "--backend", backend, "answer", "--listen", "udp:127.0.0.1:0", *args
    ) as run:
        yield run


async def call(backend: str, port: int, *args: str) -> list[str]:
    """Run ``trio-sip call`` to the answerer; return its stdout lines (exit 0 asserted)."""
    argv = [sys.executable, "-m", "trio_sip", "--backend", backend, "call"]
    argv += [f"sip:bob@127.0.0.1:{port}", "--listen", "udp:127.0.0.1:0", *args]
    with anyio.fail_after(CALL):
        done = await anyio.run_process(argv, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def rtp_stats(lines: list[str]) -> dict[str, str]:
    """The fields of the one ``rtp:`` line among ``lines``."""
    found = [line for line in lines if line.startswith("rtp: ")]
    assert len(found) == 1, lines
    return dict(part.split("=", 1) for part in found[0].split()[1:])


def free_udp_port() -> int:
    """A UDP port free on loopback just now (the range of --rtp-ports starts near it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_tone(path: Path, seconds: float, frequency: float = 1000.0) -> None:
    """A WAV (8 kHz, 16-bit mono) of a sine at ``frequency``, -10 dBFS or so."""
    count = round(seconds * 8000)
    samples = (round(10000 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(count))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))


async def test_a_call_carries_100_packets_each_way_without_loss(
    anyio_backend_name: str, tmp_path: Path
) -> None:
    tone = tmp_path / "tone.wav"
    write_tone(tone, 2.0)  # 100 frames of 20 ms
    low = free_udp_port() & ~1
    async with answering(
        anyio_backend_name, "--media", "echo", "--rtp-ports", f"{low}-{low + 19}"
    ) as answer:
        lines = await call(
            anyio_backend_name, answer.port(), "--media", f"play:{tone}", "--duration", "3"
        )
    assert answer.returncode == 0, answer.err
    assert lines[0] == "SIP/2.0 200 OK"
    caller, callee = rtp_stats(lines), rtp_stats(answer.lines)
    assert caller["call_id"] == callee["call_id"]
    # Each side sent to where the other one is.
    assert caller["remote"] == callee["local"]
    assert callee["remote"] == caller["local"]
    assert low <= int(callee["local"].rsplit(":", 1)[1]) <= low + 18
    for side in (caller, callee):
        assert side["packets_sent"] == "100", (caller, callee)
        assert side["packets_received"] == "100", (caller, callee)
        assert side["packets_expected"] == "100", (caller, callee)
        assert side["packets_lost"] == "0", (caller, callee)
        assert side["malformed"] == side["duplicates"] == "0"
    # The echo took every packet; the caller only plays (its unread ones are dropped).
    assert callee["dropped"] == "0"


async def test_dtmf_sent_by_call_is_detected_by_answer(anyio_backend_name: str) -> None:
    # One answerer, four calls in turn: RFC 4733 events, tones in PCMU and
    # in PCMA, SIP INFO. Each call's dtmf: lines come before its rtp: line.
    sends = [
        ("rfc4733", "PCMU", "159#"),
        ("inband", "PCMU", "260*"),
        ("inband", "PCMA", "37AD"),
        ("info", "PCMU", "48B*"),
    ]
    callers = []
    async with answering(anyio_backend_name, "--inband-dtmf") as answer:
        for mode, codec, digits in sends:
            lines = await call(
                anyio_backend_name, answer.port(), "--media", "silence", "--dtmf", digits,
                "--dtmf-mode", mode, "--codec", codec,
            )  # fmt: skip
            callers.append(rtp_stats(lines))
    assert answer.returncode == 0, answer.err
    detected: list[list[str]] = [[]]
    callees = []
    dtmf_calls = set()
    for line in answer.lines:
        if line.startswith("dtmf: "):
            digit, call_id = line.split()[1:]
            detected[-1].append(digit)
            dtmf_calls.add(call_id)
        elif line.startswith("rtp: "):
            callees.append(rtp_stats([line]))
            detected.append([])
    assert detected[:-1] == [list(digits) for _, _, digits in sends], answer.out
    assert dtmf_calls == {f"call_id={callee['call_id']}" for callee in callees}
    for (mode, codec, digits), caller, callee in zip(sends, callers, callees, strict=True):
        assert caller["call_id"] == callee["call_id"]
        assert caller["codec"] == callee["codec"] == codec
        # The RTP statistics count the digits that went over RTP.
        over_rtp = str(len(digits)) if mode != "info" else "0"
        assert caller["dtmf_sent"] == callee["dtmf_received"] == over_rtp
        assert callee["packets_lost"] == "0"


async def test_answer_stopped_mid_call_hangs_up_and_reports(
    anyio_backend_name: str, tmp_path: Path
) -> None:
    # answer plays a 1 kHz tone in a loop, call records it; stopping answer
    # (SIGINT) in the middle hangs the call up, and both sides report.
    tone, recording = tmp_path / "tone.wav", tmp_path / "recorded.wav"
    write_tone(tone, 0.5)
    argv = [sys.executable, "-m", "trio_sip", "--backend", anyio_backend_name, "call"]
    caller: Process | None = None
    try:
        async with answering(anyio_backend_name, "--media", f"play:{tone}") as answer:
            argv += [f"sip:bob@127.0.0.1:{answer.port()}", "--listen", "udp:127.0.0.1:0"]
            argv += ["--media", f"record:{recording}", "--duration", "60"]
            caller = await anyio.open_process(argv)
            assert caller.stdout is not None
            with anyio.fail_after(CALL):
                first = b""
                while not first.endswith(b"\n"):
                    first += await caller.stdout.receive()
            assert first == b"SIP/2.0 200 OK\n"
            await anyio.sleep(1.0)  # a second of the tone
        # Leaving the block stopped the answerer (SIGINT): it sent BYE and
        # printed the call's rtp: line; the caller saw the BYE long before 60 s.
        with anyio.fail_after(CALL):
            rest = b"".join([chunk async for chunk in caller.stdout])
            assert await caller.wait() == 0
    finally:
        if caller is not None:
            with anyio.CancelScope(shield=True):
                if caller.returncode is None:
                    caller.kill()
                await caller.aclose()
    lines = rest.decode().splitlines()
    assert lines[1:] == ["the other side hung up", "call ended"], lines
    assert answer.returncode == 0, answer.err
    sent, received = rtp_stats(answer.lines), rtp_stats(lines)
    assert int(sent["packets_sent"]) >= 25, sent
    assert received["packets_received"] == sent["packets_sent"]
    assert received["packets_lost"] == "0"
    # The recording is the tone: 160 samples a packet (the last ones may
    # have come with the BYE, after the recorder stopped), and a 1 kHz sine
    # crosses zero 2000 times a second.
    with wave.open(str(recording), "rb") as wav:
        samples = [v for (v,) in struct.iter_unpack("<h", wav.readframes(wav.getnframes()))]
    packets = int(received["packets_received"])
    assert 160 * (packets - 2) <= len(samples) <= 160 * packets, (len(samples), packets)
    crossings = sum(1 for x, y in itertools.pairwise(samples) if (x < 0) != (y < 0))
    assert abs(crossings / (len(samples) / 8000) - 2000) < 50, crossings


MEDIA_ERRORS = [
    (["--media", "play:{tmp}/missing.wav"], "cannot play"),
    (["--media", "play:{tmp}/text.wav"], "does not start with RIFF"),
    (["--media", "play:{tmp}/empty.wav"], "not a WAV"),
    (["--media", "record:{tmp}/no/such/dir.wav"], "no directory"),
    (["--media", "tone"], "expected echo, silence, play:FILE or record:FILE"),
    (["--rtp-ports", "5000-4000"], "bad port range"),
    (["--rtp-ports", "5000"], "expected LOW-HIGH"),
    (["--codec", "G729"], "expected PCMU or PCMA"),
]
DTMF_ERRORS = [
    (["--dtmf", "12x"], "DTMF digits are 0-9 * # A-D"),
    (["--dtmf", "1", "--dtmf-mode", "sip-info"], "invalid choice"),
    (["--dtmf", "1", "--dtmf-mode", "INFO"], "invalid choice"),
]
WHERE = {"call": ["sip:bob@127.0.0.1:9"], "answer": ["--listen", "udp:127.0.0.1:0"]}


@pytest.mark.parametrize(
    ("command", "args", "complaint"),
    [(c, a, w) for c in WHERE for a, w in MEDIA_ERRORS] + [("call", a, w) for a, w in DTMF_ERRORS],
)
def test_bad_media_arguments_are_usage_errors(
    command: str,
    args: list[str],
    complaint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    argv = [command, *WHERE[command], *(arg.format(tmp=tmp_path) for arg in args)]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert complaint in err
