# -*- test-case-name: tests.test_media_vad -*-
"""
In-band DTMF: Goertzel filters at the eight DTMF frequencies.

``dtmf_digit(samples)`` classifies one block (typically 20 ms): the digit whose row and
column tones carry most of the block's energy, or None.  The tests, all on powers normalised
to the block energy (a pure tone gives 1.0):

* the block is loud enough (each tone above ``MIN_TONE_RMS``);
* the strongest row tone plus the strongest column tone carry at least ``MIN_TONE_SHARE`` of
  the energy (speech spreads its energy over many harmonics and formants);
* twist: neither tone is more than ``MAX_TWIST`` (power ratio, about 9 dB) above the other,
  which also rejects single tones;
* each is at least ``MIN_GROUP_RATIO`` times the runner-up in its own group.

``InbandDtmfDetector`` runs this on consecutive 20 ms blocks and reports a key once per tone
burst: when two blocks in a row give the same digit (40 ms, the shortest tone ITU-T Q.24 asks
receivers to accept), and again only after a block without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sbc.media.core.g711 import ALAW_TO_FLOAT, ULAW_TO_FLOAT
from sbc.media.core.rfc4733 import Keypress

__all__ = ["COLUMN_FREQUENCIES", "InbandDtmfDetector", "ROW_FREQUENCIES", "dtmf_digit", "tone_powers"]

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

MIN_TONE_RMS = 250.0  # about -33 dBm0 per tone on the 16-bit G.711 scale
MIN_TONE_SHARE = 0.5
MAX_TWIST = 8.0
MIN_GROUP_RATIO = 4.0

_coefficients: dict[int, tuple[float, ...]] = {}


def _coefficients_for(sample_rate: int) -> tuple[float, ...]:
    found = _coefficients.get(sample_rate)
    if found is None:
        found = tuple(
            2.0 * math.cos(2.0 * math.pi * f / sample_rate) for f in ROW_FREQUENCIES + COLUMN_FREQUENCIES
        )
        _coefficients[sample_rate] = found
    return found


def _powers(samples: Sequence[float], coefficients: Sequence[float]) -> list[float]:
    powers: list[float] = []
    for k in coefficients:
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        powers.append(s1 * s1 + s2 * s2 - k * s1 * s2)
    return powers


def tone_powers(samples: Sequence[float], sample_rate: int = 8000) -> list[float]:
    """
    Power at each DTMF frequency (rows then columns), as |X(f)|^2, by Goertzel recursion.

    Float samples run faster than ints (no int/float mixing in the loop).
    """
    return _powers(samples, _coefficients_for(sample_rate))


def dtmf_digit(samples: Sequence[float], sample_rate: int = 8000, energy: float | None = None) -> str | None:
    """The DTMF digit this block holds, or None.  ``energy``: sum of squares, if known."""
    n = len(samples)
    if n < sample_rate // 200:  # under 5 ms: no frequency resolution
        return None
    if energy is None:
        energy = float(sum([x * x for x in samples]))
    if energy < 2.0 * n * MIN_TONE_RMS * MIN_TONE_RMS:
        return None
    scale = 2.0 / (n * energy)
    coefficients = _coefficients_for(sample_rate)
    rows = [v * scale for v in _powers(samples, coefficients[:4])]
    row = max(range(4), key=rows.__getitem__)
    pr = rows[row]
    # The row tone needs at least this share for the pair to pass the share and twist tests:
    # most speech stops here, at half the cost.
    if pr * (1.0 + MAX_TWIST) < MIN_TONE_SHARE:
        return None
    cols = [v * scale for v in _powers(samples, coefficients[4:])]
    col = max(range(4), key=cols.__getitem__)
    pc = cols[col]
    if pr + pc < MIN_TONE_SHARE or pc <= 0.0:
        return None
    if pr > MAX_TWIST * pc or pc > MAX_TWIST * pr:
        return None
    if any(i != row and v * MIN_GROUP_RATIO > pr for i, v in enumerate(rows)):
        return None
    if any(i != col and v * MIN_GROUP_RATIO > pc for i, v in enumerate(cols)):
        return None
    return _KEYPAD[row][col]


class InbandDtmfDetector:
    """Keypresses from in-band DTMF tones in decoded audio (one direction of one call)."""

    def __init__(self, sample_rate: int = 8000) -> None:
        if sample_rate < 4000:
            raise ValueError(f"sample rate {sample_rate!r} too low for DTMF")
        self.sample_rate = sample_rate
        self._block = sample_rate // 50
        self._pending: list[float] = []
        self._candidate: str | None = None
        self._reported: str | None = None

    def feed_payload(self, payload: bytes, codec: str, now: float) -> Keypress | None:
        """A "PCMU" or "PCMA" payload (decoded here, to floats); ValueError for other codecs."""
        codec = codec.upper()
        if codec == "PCMU":
            table = ULAW_TO_FLOAT
        elif codec == "PCMA":
            table = ALAW_TO_FLOAT
        else:
            raise ValueError(f"in-band DTMF needs G.711 audio, not {codec!r}")
        return self.feed([table[b] for b in payload], now)

    def feed(self, samples: Sequence[float], now: float) -> Keypress | None:
        """Samples (16-bit scale) in any chunk size; a key when a tone burst is recognised."""
        pending = self._pending
        if not pending and len(samples) == self._block:
            return self._classify(samples, now)
        pending.extend(samples)
        key = None
        block = self._block
        while len(pending) >= block:
            found = self._classify(pending[:block], now)
            del pending[:block]
            key = key or found
        return key

    def reset(self) -> None:
        self._pending.clear()
        self._candidate = None
        self._reported = None

    def _classify(self, block: Sequence[float], now: float) -> Keypress | None:
        digit = dtmf_digit(block, self.sample_rate)
        previous, self._candidate = self._candidate, digit
        if digit is None or digit != previous:
            if digit != self._reported:
                self._reported = None
            return None
        if digit == self._reported:
            return None
        self._reported = digit
        return Keypress(digit, now, "inband")
