# -*- test-case-name: tests.test_media_vad -*-
"""
G.711 (ITU-T G.711) mu-law and A-law, as 256-entry tables.

Decoding is a table look-up per byte.  Samples are on the 16-bit linear scale (mu-law peaks
at +-32124, A-law at +-32256).  The encoders are for tests, benches and tone generation; they
compute each sample, so they are not meant for the per-packet path.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ALAW_TO_LINEAR",
    "ALAW_SQUARED",
    "ALAW_TO_FLOAT",
    "ULAW_TO_LINEAR",
    "ULAW_SQUARED",
    "ULAW_TO_FLOAT",
    "alaw_to_linear",
    "decoder_table",
    "linear_to_alaw",
    "linear_to_ulaw",
    "ulaw_to_linear",
]


def _ulaw(byte: int) -> int:
    u = ~byte & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return -magnitude if u & 0x80 else magnitude


def _alaw(byte: int) -> int:
    a = byte ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if a & 0x80 else -magnitude


ULAW_TO_LINEAR: tuple[int, ...] = tuple(_ulaw(b) for b in range(256))
ALAW_TO_LINEAR: tuple[int, ...] = tuple(_alaw(b) for b in range(256))
#: Squares of the decoded samples: the energy of a payload without decoding it.
ULAW_SQUARED: tuple[int, ...] = tuple(v * v for v in ULAW_TO_LINEAR)
ALAW_SQUARED: tuple[int, ...] = tuple(v * v for v in ALAW_TO_LINEAR)
#: The samples as floats, for DSP loops (float-only arithmetic is faster in CPython).
ULAW_TO_FLOAT: tuple[float, ...] = tuple(float(v) for v in ULAW_TO_LINEAR)
ALAW_TO_FLOAT: tuple[float, ...] = tuple(float(v) for v in ALAW_TO_LINEAR)

_TABLES = {"PCMU": ULAW_TO_LINEAR, "PCMA": ALAW_TO_LINEAR}


def decoder_table(codec: str) -> tuple[int, ...]:
    """The byte -> sample table for "PCMU" or "PCMA" (case-insensitive); ValueError otherwise."""
    try:
        return _TABLES[codec.upper()]
    except KeyError:
        raise ValueError(f"not a G.711 codec: {codec!r}") from None


def ulaw_to_linear(payload: bytes) -> list[int]:
    """Decode mu-law bytes to 16-bit samples."""
    table = ULAW_TO_LINEAR
    return [table[b] for b in payload]


def alaw_to_linear(payload: bytes) -> list[int]:
    """Decode A-law bytes to 16-bit samples."""
    table = ALAW_TO_LINEAR
    return [table[b] for b in payload]


def _clip(sample: int) -> int:
    return -32768 if sample < -32768 else 32767 if sample > 32767 else sample


def linear_to_ulaw(samples: Iterable[int]) -> bytes:
    """Encode 16-bit samples as mu-law (values outside int16 are clipped)."""
    out = bytearray()
    for sample in samples:
        x = _clip(int(sample))
        sign = 0x80 if x < 0 else 0
        magnitude = min(-x if x < 0 else x, 32635) + 0x84
        exponent = magnitude.bit_length() - 8
        mantissa = (magnitude >> (exponent + 3)) & 0x0F
        out.append(~(sign | (exponent << 4) | mantissa) & 0xFF)
    return bytes(out)


def linear_to_alaw(samples: Iterable[int]) -> bytes:
    """Encode 16-bit samples as A-law (values outside int16 are clipped)."""
    out = bytearray()
    for sample in samples:
        x = _clip(int(sample))
        if x >= 0:
            mask = 0xD5
        else:
            mask = 0x55
            x = -x - 1
        if x < 256:
            code = x >> 4
        else:
            exponent = x.bit_length() - 8
            code = (exponent << 4) | ((x >> (exponent + 3)) & 0x0F)
        out.append(code ^ mask)
    return bytes(out)
