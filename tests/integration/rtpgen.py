"""Build RTP streams as pcap files for SIPp's ``play_pcap_audio``.

SIPp replays the UDP payloads of a pcap file toward the media address of the SDP it
received, paced by the capture timestamps, so a test can play RFC 4733 telephone-events,
G.711 speech or silence exactly as designed.  The capture is classic libpcap (link type
Ethernet) with IPv4/UDP frames; the addresses in it do not matter (SIPp rewrites them).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

__all__ = ["EVENT_CODES", "dtmf_packets", "speech_packets", "silence_packets", "write_pcap", "ulaw"]

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class Stream:
    """One RTP stream: sequence numbers and the media clock advance as packets are added."""

    def __init__(self, ssrc: int = 0x1234ABCD, seq: int = 1000, ts: int = 160000) -> None:
        self.ssrc = ssrc
        self.seq = seq
        self.ts = ts
        self.t = 0.0
        self.packets: list[tuple[float, bytes]] = []

    def add(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        self.packets.append((self.t, _rtp(pt, self.seq, ts, self.ssrc, payload, marker)))
        self.seq += 1


def dtmf_packets(stream: Stream, digits: str, pt: int, *, press_ms: int = 100, gap_ms: int = 200,
                 end_copies: int = 3) -> None:
    """RFC 4733 events for ``digits``: a start packet with the marker bit, updates every
    20 ms, ``end_copies`` end packets; then ``gap_ms`` of nothing."""
    for digit in digits:
        code = EVENT_CODES[digit]
        start = stream.ts
        steps = max(1, press_ms // 20)
        for i in range(steps):
            duration = 160 * (i + 1)
            stream.add(pt, start, struct.pack("!BBH", code, 10, duration), marker=(i == 0))
            stream.t += 0.02
        for _ in range(end_copies):
            stream.add(pt, start, struct.pack("!BBH", code, 0x80 | 10, 160 * steps))
        stream.t += 0.02
        stream.ts += 160 * (steps + 1)
        stream.t += gap_ms / 1000.0
        stream.ts += 8 * gap_ms


def ulaw(sample: int) -> int:
    """G.711 µ-law encoding of one 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    if sample < 0:
        sample = -sample
    sample = min(sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _audio(stream: Stream, ms: int, sample_at) -> None:  # type: ignore[no-untyped-def]
    for _ in range(ms // 20):
        start = stream.ts
        payload = bytes(ulaw(int(sample_at(start + n))) for n in range(160))
        stream.add(0, start, payload)
        stream.ts += 160
        stream.t += 0.02


def speech_packets(stream: Stream, ms: int, level: float = 8000.0) -> None:
    """A loud voiced signal (a 140 Hz fundamental with harmonics, syllable-like envelope)."""
    def sample(n: int) -> float:
        t = n / 8000.0
        envelope = 0.6 + 0.4 * math.sin(2 * math.pi * 4 * t)
        voice = sum(math.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 12))
        return level * envelope * voice / 2.5
    _audio(stream, ms, sample)


def silence_packets(stream: Stream, ms: int) -> None:
    _audio(stream, ms, lambda n: 0.0)


def write_pcap(path: Path, packets: list[tuple[float, bytes]], *, src_port: int = 6000, dst_port: int = 7000) -> None:
    """Write ``packets`` ((seconds, UDP payload) pairs) as a libpcap file."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    base = 1_700_000_000.0
    for i, (t, payload) in enumerate(packets):
        udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
        total = 20 + len(udp)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, i & 0xFFFF, 0, 64, 17, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        checksum = 0
        for j in range(0, 20, 2):
            checksum += (ip[j] << 8) | ip[j + 1]
        while checksum >> 16:
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
        ip = ip[:10] + struct.pack("!H", ~checksum & 0xFFFF) + ip[12:]
        frame = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb" + b"\x08\x00" + ip + udp
        stamp = base + t
        sec = int(stamp)
        usec = int(round((stamp - sec) * 1_000_000))
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
