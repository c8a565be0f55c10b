"""Ready-made media handlers, as in Net::SIP: echo, play, record, silence.

Each is an async function of a :class:`~trio_sip.media.MediaSession` that runs
until the session closes, the audio ends, or its caller cancels it; run one in
a task next to the call::

    async with MediaSession("127.0.0.1") as media, anyio.create_task_group() as tg:
        tg.start_soon(play, media, "greeting.wav")
        ...

Audio files are 8 kHz mono: a WAV of 16-bit PCM (read and written with the
stdlib :mod:`wave`), or raw PCMU/PCMA octets (``.pcmu``/``.ulaw``/``.ul`` and
``.pcma``/``.alaw``/``.al``). File I/O runs in a worker thread so that it does
not stall the event loop.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

import anyio

from . import g711
from .session import MediaSession

__all__ = ["AudioClip", "echo", "load_audio", "play", "record", "silence"]

_RAW_SUFFIXES: Final = {
    ".pcmu": "PCMU",
    ".ulaw": "PCMU",
    ".ul": "PCMU",
    ".pcma": "PCMA",
    ".alaw": "PCMA",
    ".al": "PCMA",
}

#: The sample rate of every file the handlers read and write (G.711's, RFC 3551 4.5.14).
SAMPLE_RATE: Final = 8000

# The longest gap record() fills with silence, and the furthest back a packet
# is taken as late: a larger timestamp jump either way is a restarted sender.
_MAX_GAP_SAMPLES: Final = 5 * SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class AudioClip:
    """Audio in memory: ``encoding`` is "L16" (16-bit little-endian PCM), "PCMU" or "PCMA"."""

    encoding: str
    data: bytes

    def encoded(self, encoding: str) -> bytes:
        """The clip in ``encoding`` ("PCMU" or "PCMA"), converted through PCM when needed."""
        if self.encoding.upper() == encoding.upper():
            return self.data
        pcm = self.data if self.encoding == "L16" else g711.decode(self.encoding, self.data)
        return g711.encode(encoding, pcm)


def load_audio(path: str | os.PathLike[str], *, encoding: str | None = None) -> AudioClip:
    """Read a WAV (16-bit PCM, 8 kHz, mono) or a raw PCMU/PCMA file.

    ``encoding`` ("PCMU"/"PCMA") names the encoding of a raw file whose suffix
    does not. This reads the file synchronously; :func:`play` calls it in a thread.
    """
    path = Path(path)
    raw = encoding or _RAW_SUFFIXES.get(path.suffix.lower())
    if raw is not None:
        if raw.upper() not in g711.G711_ENCODINGS:
            raise ValueError(f"raw audio must be PCMU or PCMA, not {raw!r}")
        return AudioClip(raw.upper(), path.read_bytes())
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        if shape != (1, 2, SAMPLE_RATE):
            raise ValueError(
                f"{path.name}: need mono 16-bit {SAMPLE_RATE} Hz, got {shape[0]} channel(s), "
                f"{8 * shape[1]}-bit, {shape[2]} Hz"
            )
        return AudioClip("L16", wav.readframes(wav.getnframes()))


async def echo(session: MediaSession) -> None:
    """Send back every audio packet received, until the session closes.

    Packets in another G.711 law than ours are converted; others are dropped.
    """
    async for packet in session.receive():
        if packet.payload_type == session.codec.payload_type:
            await session.send(packet.payload)
            continue
        pcm = session.decode(packet)
        if pcm is not None:
            await session.send(session.encode(pcm))


async def silence(session: MediaSession) -> NoReturn:
    """Send silence frames for ever (some peers drop a call that receives no RTP)."""
    while True:
        await session.send(session.silence_frame())


async def play(
    session: MediaSession,
    source: str | os.PathLike[str] | AudioClip,
    *,
    loop: bool = False,
    encoding: str | None = None,
) -> None:
    """Play a file (see :func:`load_audio`) or a clip, once or (``loop``) for ever.

    The audio is converted to the session's codec (once per codec) and cut
    into packet-time frames as it is sent, so that a codec or packet time
    changed meanwhile (a re-INVITE) applies from the next frame; the last frame
    of the clip is padded with silence.
    """
    clip = (
        source
        if isinstance(source, AudioClip)
        else await anyio.to_thread.run_sync(lambda: load_audio(source, encoding=encoding))
    )
    converted: dict[str, bytes] = {}
    position = 0  # in samples, which are octets in G.711
    while True:
        # Read at every frame: the payload type send() stamps is the session's
        # codec of the moment, and the audio must be in that law (RFC 3551 6).
        name = session.codec.encoding_name.upper()
        data = converted.get(name)
        if data is None:
            data = converted[name] = clip.encoded(name)
        if not data:
            return
        if position >= len(data):
            if not loop:
                return
            position = 0
        frame = session.samples_per_frame
        payload = data[position : position + frame]
        position += frame
        if len(payload) < frame:
            payload += g711.silence(name, frame - len(payload))
        await session.send(payload)


async def record(session: MediaSession, path: str | os.PathLike[str]) -> None:
    """Record received audio to a WAV (16-bit PCM, 8 kHz, mono) until the session closes.

    Lost packets become silence of their length (from the RTP timestamps), so
    the recording keeps the call's timing; a new source (SSRC) or a clock that
    jumps by more than a few seconds carries on without a gap. The file is written about once a
    second and is a valid WAV at every point (:mod:`wave` patches the header
    after each write); it is closed when this returns or is cancelled. When the
    session closes, the packets it had already received are still written.
    """
    # Shielded: a cancel while the thread opens the file would lose the writer.
    with anyio.CancelScope(shield=True):
        writer = await anyio.to_thread.run_sync(_open_wav, str(path))
    pending = bytearray()
    expected: int | None = None
    source: int | None = None
    try:
        async for packet in session.receive():
            pcm = session.decode(packet)
            if pcm is None:
                continue
            if packet.ssrc != source:
                # A new source has a timestamp origin of its own (RFC 3550
                # 5.1): its first timestamp says nothing about a gap.
                source, expected = packet.ssrc, None
            if expected is not None:
                gap = (packet.timestamp - expected) & 0xFFFFFFFF
                if 0 < gap <= _MAX_GAP_SAMPLES:
                    pending += bytes(2 * gap)
                elif 0 < (-gap & 0xFFFFFFFF) <= _MAX_GAP_SAMPLES:
                    continue  # a late packet whose place is already written
                # Any other jump, forward or back, is a restarted clock: the
                # recording carries on from this packet.
            expected = (packet.timestamp + len(pcm) // 2) & 0xFFFFFFFF
            pending += pcm
            if len(pending) >= 2 * SAMPLE_RATE:
                chunk = bytes(pending)
                pending.clear()
                await anyio.to_thread.run_sync(writer.writeframes, chunk)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_finish_wav, writer, bytes(pending))


def _open_wav(path: str) -> wave.Wave_write:
    # The writer outlives this function: record() closes it in _finish_wav.
    writer = wave.open(path, "wb")  # noqa: SIM115
    writer.setnchannels(1)
    writer.setsampwidth(2)
    writer.setframerate(SAMPLE_RATE)
    return writer


def _finish_wav(writer: wave.Wave_write, rest: bytes) -> None:
    try:
        writer.writeframes(rest)
    finally:
        writer.close()
