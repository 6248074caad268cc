# -*- test-case-name: tests.test_media_rfc4733 -*-
"""Helpers and Hypothesis strategies for the media core tests: RFC 4733 event packet trains."""

from __future__ import annotations

from hypothesis import strategies as st

from sbc.media.core.rfc4733 import event_payload
from sbc.media.core.rtp import RtpPacket, build_rtp, parse_rtp

PT = 101


def te_packet(
    code: int,
    timestamp: int,
    duration: int,
    end: bool = False,
    marker: bool = False,
    ssrc: int = 0x1234,
    sequence: int = 0,
    payload_type: int = PT,
) -> RtpPacket:
    """One telephone-event packet, through the real serialiser and parser."""
    packet = parse_rtp(
        build_rtp(payload_type, sequence, timestamp, ssrc, event_payload(code, end, duration), marker=marker)
    )
    assert packet is not None
    return packet


def event_train(
    code: int,
    timestamp: int,
    length: int = 800,
    step: int = 160,
    ends: int = 3,
    ssrc: int = 0x1234,
    sequence: int = 0,
    payload_type: int = PT,
) -> list[RtpPacket]:
    """An RFC-conformant event: marked start, updates every ``step``, ``ends`` end packets."""
    packets = []
    duration = step
    while duration < length:
        packets.append(
            te_packet(code, timestamp, duration, False, duration == step, ssrc, sequence, payload_type)
        )
        sequence += 1
        duration += step
    for _ in range(ends):
        packets.append(te_packet(code, timestamp, length, True, False, ssrc, sequence, payload_type))
        sequence += 1
    return packets


def stamping_train(code: int, timestamp: int, packets: int = 6, step: int = 160, cumulative: bool = False,
                   ssrc: int = 0x1234) -> list[RtpPacket]:
    """A sender that puts a new timestamp on every packet (durations per packet or cumulative)."""
    out = []
    for i in range(packets):
        end = i >= packets - 3
        ts = timestamp + step * min(i, packets - 3)
        duration = step * (min(i, packets - 3) + 1) if cumulative else step
        out.append(te_packet(code, ts, duration, end, i == 0, ssrc, i))
    return out


@st.composite
def mangled(draw: st.DrawFn, packets: list[RtpPacket]) -> list[RtpPacket]:
    """Some permutation of ``packets`` with duplicates and drops, keeping at least one."""
    picks = draw(st.lists(st.integers(0, len(packets) - 1), min_size=1, max_size=3 * len(packets)))
    return [packets[i] for i in picks]


# Audio synthesis for the VAD and in-band DTMF tests (8000 Hz, 16-bit linear scale) ---------

RATE = 8000
FRAME = 160  # 20 ms


def tone(freqs: tuple[float, ...], amplitudes: tuple[float, ...], ms: float, start: int = 0) -> list[float]:
    """A sum of sines; ``start`` is the sample index the phases are counted from."""
    import math

    count = int(ms * RATE / 1000)
    steps = [2.0 * math.pi * f / RATE for f in freqs]
    return [
        sum(a * math.sin(w * n) for w, a in zip(steps, amplitudes)) for n in range(start, start + count)
    ]


def noise(ms: float, rms: float, seed: int = 1) -> list[float]:
    """White Gaussian noise."""
    import random

    rng = random.Random(seed)
    return [rng.gauss(0.0, rms) for _ in range(int(ms * RATE / 1000))]


def speech_like(ms: float, rms: float = 3000.0, seed: int = 7) -> list[float]:
    """
    A voiced, speech-like signal: a glottal-like harmonic series (f0 gliding 110-190 Hz) shaped
    by three formants, at syllable rate (4 Hz) amplitude modulation, plus a little noise.
    """
    import math
    import random

    rng = random.Random(seed)
    count = int(ms * RATE / 1000)
    formants = ((600.0, 120.0), (1500.0, 200.0), (2500.0, 300.0))

    def gain(f: float) -> float:
        return sum(1.0 / (1.0 + ((f - c) / bw) ** 2) for c, bw in formants) / (1.0 + f / 1000.0)

    out = []
    phase = [0.0] * 40
    for n in range(count):
        t = n / RATE
        f0 = 150.0 + 40.0 * math.sin(2.0 * math.pi * 1.3 * t)
        envelope = 0.65 + 0.35 * math.cos(2.0 * math.pi * 4.0 * t)
        value = 0.0
        for h in range(1, 40):
            f = h * f0
            if f > 3600.0:
                break
            phase[h] += 2.0 * math.pi * f / RATE
            value += gain(f) * math.sin(phase[h])
        out.append(envelope * value + rng.gauss(0.0, 0.05))
    scale = rms / math.sqrt(sum(v * v for v in out) / max(1, len(out)))
    return [v * scale for v in out]


def mix(*signals: list[float]) -> list[float]:
    length = max(len(s) for s in signals)
    return [sum(s[i] for s in signals if i < len(s)) for i in range(length)]


def ints(samples: list[float]) -> list[int]:
    return [max(-32768, min(32767, int(round(v)))) for v in samples]


def g711_frames(samples: list[float], codec: str = "PCMU") -> list[bytes]:
    """Encode and cut into 20 ms payloads (a trailing partial frame is dropped)."""
    from sbc.media.core.g711 import linear_to_alaw, linear_to_ulaw

    encoded = (linear_to_ulaw if codec == "PCMU" else linear_to_alaw)(ints(samples))
    return [encoded[i : i + FRAME] for i in range(0, len(encoded) - FRAME + 1, FRAME)]


DTMF_FREQUENCIES = {
    d: (r, c)
    for row, r in zip(("123A", "456B", "789C", "*0#D"), (697.0, 770.0, 852.0, 941.0))
    for d, c in zip(row, (1209.0, 1336.0, 1477.0, 1633.0))
}


def dtmf(digit: str, ms: float, amplitude: float = 7000.0, twist_db: float = 0.0, start: int = 0,
         detune: float = 1.0) -> list[float]:
    """A DTMF dual tone; ``twist_db`` raises the column tone over the row tone."""
    row, col = DTMF_FREQUENCIES[digit]
    return tone((row * detune, col * detune), (amplitude, amplitude * 10 ** (twist_db / 20)), ms, start)
