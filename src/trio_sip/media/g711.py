"""G.711 mu-law (PCMU) and A-law (PCMA) codecs, sans-IO.

Written from ITU-T G.711 (the stdlib ``audioop`` module is gone since Python
3.13). Linear audio is 16-bit signed PCM, little-endian, as in a WAV file.
Both laws are companded 8-bit codes on an 8 kHz clock (RFC 3551 section 4.5.14):
one octet per sample, so a 20 ms frame is 160 octets.

Every conversion goes through tables built once at import: 256 entries to
decode, and one entry per significant input step to encode (mu-law keeps 14 of
the 16 bits, A-law 13), so the per-packet work is a table lookup per sample.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Final

__all__ = [
    "G711_ENCODINGS",
    "PCMA_SILENCE",
    "PCMU_SILENCE",
    "alaw_decode",
    "alaw_encode",
    "alaw_from_linear",
    "alaw_to_linear",
    "decode",
    "encode",
    "silence",
    "samples_from_pcm",
    "pcm_from_samples",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_from_linear",
    "ulaw_to_linear",
]

# mu-law (G.711 section 3) works on 14 significant bits: the magnitude is
# offset by 33 so that every segment starts at a power of two, and clipped to
# 13 bits. Decoding uses the same offset at 16-bit scale (33 << 2).
_ULAW_BIAS: Final = 0x84
_ULAW_MAX: Final = 0x1FFF

#: The code of a zero sample in each law (what a silent frame is made of).
PCMU_SILENCE: Final = 0xFF
PCMA_SILENCE: Final = 0xD5


def ulaw_from_linear(sample: int) -> int:
    """The mu-law code of one 16-bit sample."""
    # Negative samples are taken in ones' complement (~x = -x - 1), as the
    # ITU-T G.191 reference does: the intervals are then symmetric about -0.5
    # and a sample's code depends only on its top 14 bits.
    if sample < 0:
        sign = 0x80
        magnitude = ((~sample) >> 2) + 33
    else:
        sign = 0
        magnitude = (sample >> 2) + 33
    magnitude = min(magnitude, _ULAW_MAX)
    # The segment (exponent) is the position of the highest set bit above bit 5.
    exponent = magnitude.bit_length() - 6
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    # Codes are sent inverted (G.711 table 2a) so that idle lines are mostly ones.
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_to_linear(code: int) -> int:
    """The 16-bit sample a mu-law code stands for."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = ((((code & 0x0F) << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return -magnitude if code & 0x80 else magnitude


def alaw_from_linear(sample: int) -> int:
    """The A-law code of one 16-bit sample."""
    value = sample >> 3  # A-law has 13 significant bits
    if value >= 0:
        mask = 0xD5  # sign bit set for positive, even bits inverted (G.711 table 1a)
    else:
        mask = 0x55
        value = -value - 1
    if value < 32:
        segment = 0
        code = value >> 1
    else:
        segment = value.bit_length() - 5
        if segment > 7:
            return 0x7F ^ mask  # clip to the largest magnitude
        code = (segment << 4) | ((value >> segment) & 0x0F)
    return code ^ mask


def alaw_to_linear(code: int) -> int:
    """The 16-bit sample an A-law code stands for."""
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


_ULAW_DECODE: Final = tuple(ulaw_to_linear(code) for code in range(256))
_ALAW_DECODE: Final = tuple(alaw_to_linear(code) for code in range(256))
# Indexed by the sample shifted right (2 bits for mu-law, 3 for A-law) and
# offset to be non-negative: every sample in one step encodes the same.
_ULAW_ENCODE: Final = bytes(ulaw_from_linear(step << 2) for step in range(-8192, 8192))
_ALAW_ENCODE: Final = bytes(alaw_from_linear(step << 3) for step in range(-4096, 4096))

_SWAP: Final = sys.byteorder == "big"


def samples_from_pcm(pcm: bytes) -> array[int]:
    """16-bit little-endian PCM bytes as an array of samples."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    if _SWAP:
        samples.byteswap()
    return samples


def pcm_from_samples(samples: Sequence[int]) -> bytes:
    """Samples (each within 16 bits) as 16-bit little-endian PCM bytes."""
    data = array("h", samples)
    if _SWAP:
        data.byteswap()
    return data.tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> mu-law, one octet per sample."""
    table = _ULAW_ENCODE
    return bytes([table[(s >> 2) + 8192] for s in samples_from_pcm(pcm)])


def ulaw_decode(data: bytes) -> bytes:
    """mu-law -> 16-bit little-endian PCM."""
    table = _ULAW_DECODE
    return pcm_from_samples([table[code] for code in data])


def alaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> A-law, one octet per sample."""
    table = _ALAW_ENCODE
    return bytes([table[(s >> 3) + 4096] for s in samples_from_pcm(pcm)])


def alaw_decode(data: bytes) -> bytes:
    """A-law -> 16-bit little-endian PCM."""
    table = _ALAW_DECODE
    return pcm_from_samples([table[code] for code in data])


_Convert = Callable[[bytes], bytes]
_CODECS: Final[dict[str, tuple[_Convert, _Convert, int]]] = {
    "PCMU": (ulaw_encode, ulaw_decode, PCMU_SILENCE),
    "PCMA": (alaw_encode, alaw_decode, PCMA_SILENCE),
}

#: The encoding names (as in an rtpmap, upper case) this module converts.
G711_ENCODINGS: Final = frozenset(_CODECS)


def _codec(encoding: str) -> tuple[_Convert, _Convert, int]:
    try:
        return _CODECS[encoding.upper()]
    except KeyError:
        raise ValueError(f"encoding {encoding!r} is not PCMU or PCMA") from None


def encode(encoding: str, pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> ``encoding`` ("PCMU" or "PCMA", any case)."""
    return _codec(encoding)[0](pcm)


def decode(encoding: str, data: bytes) -> bytes:
    """``encoding`` ("PCMU" or "PCMA", any case) -> 16-bit little-endian PCM."""
    return _codec(encoding)[1](data)


def silence(encoding: str, samples: int) -> bytes:
    """``samples`` samples of silence in ``encoding`` ("PCMU" or "PCMA")."""
    return bytes((_codec(encoding)[2],)) * samples
