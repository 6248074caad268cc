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
