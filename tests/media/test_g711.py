"""G.711 mu-law and A-law against the values of the standard."""

from __future__ import annotations

import math

import pytest

from trio_sip.media import g711


@pytest.mark.parametrize(
    ("sample", "code"),
    [
        (0, 0xFF),
        (-1, 0x7F),
        (32767, 0x80),
        (-32768, 0x00),
        (1000, 0xCE),
        (-1000, 0x4E),
        (-4, 0x7F),
        (-5, 0x7E),
        (4, 0xFE),
    ],
)
def test_ulaw_encode_known_values(sample: int, code: int) -> None:
    assert g711.ulaw_from_linear(sample) == code


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xCE, 988), (0xF0, 120)],
)
def test_ulaw_decode_known_values(code: int, sample: int) -> None:
    assert g711.ulaw_to_linear(code) == sample


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xD5), (-1, 0x55), (32767, 0xAA), (-32768, 0x2A), (1000, 0xFA), (-1000, 0x7A)],
)
def test_alaw_encode_known_values(sample: int, code: int) -> None:
    assert g711.alaw_from_linear(sample) == code


@pytest.mark.parametrize(
    ("code", "sample"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xFA, 1008)],
)
def test_alaw_decode_known_values(code: int, sample: int) -> None:
    assert g711.alaw_to_linear(code) == sample


def test_every_code_survives_decode_then_encode() -> None:
    # mu-law has two zeros (0x7F and 0xFF); zero encodes as 0xFF.
    assert [c for c in range(256) if g711.ulaw_from_linear(g711.ulaw_to_linear(c)) != c] == [0x7F]
    assert all(g711.alaw_from_linear(g711.alaw_to_linear(c)) == c for c in range(256))


def test_encoding_is_monotonic() -> None:
    for law, to_linear in (
        (g711.ulaw_from_linear, g711.ulaw_to_linear),
        (g711.alaw_from_linear, g711.alaw_to_linear),
    ):
        decoded = [to_linear(law(s)) for s in range(-32768, 32768, 7)]
        assert decoded == sorted(decoded)


def test_bytes_functions_match_the_per_sample_ones() -> None:
    samples = [round(12000 * math.sin(n / 5)) for n in range(400)] + [-32768, 32767, 0, -1]
    pcm = g711.pcm_from_samples(samples)
    assert g711.ulaw_encode(pcm) == bytes(g711.ulaw_from_linear(s) for s in samples)
    assert g711.alaw_encode(pcm) == bytes(g711.alaw_from_linear(s) for s in samples)
    codes = bytes(range(256))
    assert list(g711.samples_from_pcm(g711.ulaw_decode(codes))) == [
        g711.ulaw_to_linear(c) for c in codes
    ]
    assert list(g711.samples_from_pcm(g711.alaw_decode(codes))) == [
        g711.alaw_to_linear(c) for c in codes
    ]


def test_quantisation_error_is_small_relative_to_the_signal() -> None:
    samples = [round(10000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(800)]
    pcm = g711.pcm_from_samples(samples)
    for name in ("PCMU", "pcma"):
        back = g711.samples_from_pcm(g711.decode(name, g711.encode(name, pcm)))
        noise = sum((a - b) ** 2 for a, b in zip(samples, back, strict=True))
        signal = sum(a * a for a in samples)
        assert 10 * math.log10(signal / noise) > 30  # G.711 gives about 38 dB SNR


def test_pcm_is_little_endian() -> None:
    assert g711.pcm_from_samples([1, -2]) == b"\x01\x00\xfe\xff"
    assert list(g711.samples_from_pcm(b"\x01\x00\xfe\xff\x07")) == [1, -2]


def test_silence_and_unknown_encoding() -> None:
    assert g711.silence("PCMU", 3) == b"\xff\xff\xff"
    assert g711.silence("pcma", 2) == b"\xd5\xd5"
    with pytest.raises(ValueError, match="not PCMU or PCMA"):
        g711.encode("G729", b"")
