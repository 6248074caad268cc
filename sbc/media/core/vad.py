# -*- test-case-name: tests.test_media_vad -*-
"""
Voice activity on G.711 audio: has the caller started speaking?

An energy detector with an adaptive noise floor, cheap enough to run per packet:

* A frame's level is its mean square in dB relative to full scale (dBov), computed from a
  table of squared samples without decoding the payload.
* A frame is voiced when its level is above both an absolute floor and the noise floor plus
  a margin; both come from ``sensitivity`` (0 is deaf, 1 the most sensitive; 0.5 gives -36
  dBov and 11 dB).
* The noise floor starts at the first frame's level and follows unvoiced frames: quickly
  down, slowly up.
* Speech starts after ``ONSET_FRAMES`` voiced frames in a row (60 ms at 20 ms frames), so a
  click does not start it.  ``feed`` returns True once at that moment; after ``HANGOVER``
  seconds without a voiced frame a new start can be reported.
* A voiced frame is first checked for a DTMF dual tone (``goertzel.dtmf_digit``, run only on
  frames that could start speech, so silence and ongoing speech cost only the energy sum); a
  tone frame is neither speech nor noise.
"""

from __future__ import annotations

import math

from sbc.media.core.g711 import ALAW_SQUARED, ALAW_TO_FLOAT, ULAW_SQUARED, ULAW_TO_FLOAT
from sbc.media.core.goertzel import dtmf_digit

__all__ = ["VoiceActivityDetector"]

ONSET_FRAMES = 3
HANGOVER = 0.3
_FULL_SCALE_DB = 20.0 * math.log10(32768.0)
_NOISE_DOWN = 0.3
_NOISE_UP = 0.05

_CODECS = {"PCMU": (ULAW_SQUARED, ULAW_TO_FLOAT), "PCMA": (ALAW_SQUARED, ALAW_TO_FLOAT)}


class VoiceActivityDetector:
    """Speech starts in one direction of one call's G.711 audio."""

    def __init__(self, sensitivity: float = 0.5, frame_ms: int = 20) -> None:
        if not 0.0 <= sensitivity <= 1.0:
            raise ValueError(f"sensitivity {sensitivity!r} is not in 0..1")
        if frame_ms <= 0:
            raise ValueError(f"frame_ms {frame_ms!r} must be positive")
        self.sensitivity = sensitivity
        self.frame_ms = frame_ms
        #: Absolute floor (dBov) and margin over the noise floor (dB) a voiced frame exceeds.
        self.floor_db = -26.0 - 20.0 * sensitivity
        self.margin_db = 16.0 - 10.0 * sensitivity
        self._onset_ms = ONSET_FRAMES * frame_ms
        self._hangover_ms = HANGOVER * 1000.0
        self.reset()

    def reset(self) -> None:
        """Forget the noise floor and any speech in progress."""
        self._noise: float | None = None
        self._voiced_ms = 0.0
        self._quiet_ms = 0.0
        self._speaking = False

    @property
    def speaking(self) -> bool:
        return self._speaking

    def feed(self, payload: bytes, codec: str, now: float) -> bool:
        """
        One frame of "PCMU" or "PCMA" (any case) audio; True when speech starts with it.

        ValueError for other codecs.  Empty payloads are ignored.
        """
        found = _CODECS.get(codec) or _CODECS.get(codec.upper())
        if found is None:
            raise ValueError(f"VAD needs G.711 audio, not {codec!r}")
        squares, table = found
        n = len(payload)
        if n == 0 or self.sensitivity == 0.0:
            return False
        energy = sum([squares[b] for b in payload])
        level = 10.0 * math.log10(energy / n + 1e-3) - _FULL_SCALE_DB
        duration = n * 0.125  # ms at 8000 Hz
        noise = self._noise
        voiced = level > self.floor_db and (noise is None or level > noise + self.margin_db)
        if (voiced and not self._speaking) or noise is None:
            # Only frames that could start speech pay for the tone check.
            if level > self.floor_db and dtmf_digit([table[b] for b in payload], 8000, float(energy)):
                voiced = False  # a DTMF tone: neither speech nor noise
            elif noise is None:
                self._noise = level
                voiced = False
        elif level < noise:
            self._noise = noise + _NOISE_DOWN * (level - noise)
        else:
            self._noise = noise + _NOISE_UP * (level - noise)
        if not self._speaking:
            if not voiced:
                self._voiced_ms = 0.0
                return False
            self._voiced_ms += duration
            if self._voiced_ms >= self._onset_ms:
                self._speaking = True
                self._quiet_ms = 0.0
                return True
            return False
        if voiced:
            self._quiet_ms = 0.0
        else:
            self._quiet_ms += duration
            if self._quiet_ms >= self._hangover_ms:
                self._speaking = False
                self._voiced_ms = 0.0
        return False
