# -*- test-case-name: tests.test_media_rtp -*-
"""
RTP fixed-header parsing (RFC 3550 §5.1) and RTP/RTCP demultiplexing (RFC 5761 §4).

``parse_rtp`` is on the per-packet path: it reads the 12-byte fixed header with one
``struct`` call, skips CSRCs and a header extension, strips padding, and hands back the
payload as a bytes slice.  Anything that is not well-formed RTP version 2 gives ``None``;
nothing raises.
"""

from __future__ import annotations

import struct

from attrs import frozen

__all__ = ["RtpPacket", "build_rtp", "is_rtcp", "parse_rtp"]

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


@frozen
class RtpPacket:
    """A parsed RTP packet: the header fields the media core uses, and the payload."""

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def is_rtcp(data: bytes) -> bool:
    """
    Whether a datagram on a muxed RTP/RTCP port is RTCP.

    RFC 5761 §4: the second octet of RTCP (the packet type, 192..223 for SR, RR, SDES, BYE,
    APP and the feedback types) falls where RTP would have the marker bit set and a payload
    type of 64..95, a range RTP must not use when muxing.
    """
    return len(data) >= 2 and (data[0] >> 6) == 2 and 192 <= data[1] <= 223


def parse_rtp(data: bytes) -> RtpPacket | None:
    """
    Parse one RTP datagram, or return ``None`` when it is not RTP version 2.

    ``None`` also for datagrams too short for their CSRC list or header extension, for
    padding counts of zero or larger than the payload, and for RTCP (see ``is_rtcp``).
    """
    size = len(data)
    if size < 12:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2 or 192 <= second <= 223:
        return None
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if size < offset + 4:
            return None
        _profile, words = _EXTENSION.unpack_from(data, offset)
        offset += 4 + 4 * words
    end = size
    if first & 0x20:
        if end <= offset:
            return None
        padding = data[end - 1]
        if padding == 0 or padding > end - offset:
            return None
        end -= padding
    if offset > end:
        return None
    return RtpPacket(
        marker=bool(second & 0x80),
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
    )


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
) -> bytes:
    """Serialise a minimal RTP packet (no CSRC, extension or padding); for tests and benches."""
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return _HEADER.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + bytes(payload)
