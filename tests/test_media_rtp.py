# -*- test-case-name: tests.test_media_rtp -*-
"""RTP header parsing and RTP/RTCP demultiplexing."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.rtp import RtpPacket, build_rtp, is_rtcp, parse_rtp


class ParseRtpTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        data = build_rtp(0, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"\xff" * 160, marker=True)
        self.assertEqual(
            parse_rtp(data),
            RtpPacket(marker=True, payload_type=0, sequence=65535, timestamp=0xFFFFFFFF, ssrc=0xDEADBEEF,
                      payload=b"\xff" * 160),
        )

    def test_csrc_extension_and_padding_skipped(self) -> None:
        header = bytes([0x80 | 0x20 | 0x10 | 2, 8]) + struct.pack("!HII", 7, 1000, 42)
        csrcs = struct.pack("!II", 1, 2)
        extension = struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
        data = header + csrcs + extension + b"abcd" + b"\x00\x00\x03"
        packet = parse_rtp(data)
        assert packet is not None
        self.assertEqual((packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc), (8, 7, 1000, 42))
        self.assertEqual(packet.payload, b"abcd")

    def test_empty_payload(self) -> None:
        packet = parse_rtp(build_rtp(96, 1, 2, 3, b""))
        assert packet is not None
        self.assertEqual(packet.payload, b"")

    def test_rejects(self) -> None:
        good = build_rtp(0, 1, 2, 3, b"x" * 4)
        self.assertIsNone(parse_rtp(good[:11]), "too short")
        self.assertIsNone(parse_rtp(b"\x40" + good[1:]), "version 1")
        self.assertIsNone(parse_rtp(bytes([0x80 | 3]) + good[1:]), "CSRC list past the end")
        self.assertIsNone(parse_rtp(bytes([0x90]) + good[1:12] + b"\xbe\xde"), "extension header cut")
        self.assertIsNone(parse_rtp(bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x05"), "extension past the end")
        self.assertIsNone(parse_rtp(bytes([0xA0]) + good[1:] + b"\x00"), "padding count zero")
        self.assertIsNone(parse_rtp(bytes([0xA0]) + good[1:12] + b"ab\x09"), "padding larger than payload")
        self.assertIsNone(parse_rtp(bytes([0xA0]) + good[1:12]), "padding bit with no payload")
        self.assertIsNone(parse_rtp(b"\x80\xc8" + good[2:]), "RTCP sender report")

    @given(st.binary(max_size=80))
    def test_arbitrary_bytes_never_raise(self, data: bytes) -> None:
        packet = parse_rtp(data)
        if packet is not None:
            self.assertLessEqual(len(packet.payload), len(data) - 12)
            self.assertLess(packet.payload_type, 128)

    @given(st.integers(0, 127).filter(lambda pt: not 64 <= pt <= 95), st.integers(0, 0xFFFF),
           st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.binary(max_size=40), st.booleans())
    def test_build_parse_property(self, pt: int, seq: int, ts: int, ssrc: int, payload: bytes, m: bool) -> None:
        self.assertEqual(parse_rtp(build_rtp(pt, seq, ts, ssrc, payload, m)), RtpPacket(m, pt, seq, ts, ssrc, payload))


class IsRtcpTests(SynchronousTestCase):
    def test_rtcp_types(self) -> None:
        for packet_type in (200, 201, 202, 203, 204, 205, 206):
            self.assertTrue(is_rtcp(bytes([0x81, packet_type, 0, 1]) + b"\x00" * 4), packet_type)

    def test_rtp_is_not_rtcp(self) -> None:
        self.assertFalse(is_rtcp(build_rtp(0, 1, 2, 3, b"")))
        self.assertFalse(is_rtcp(build_rtp(101, 1, 2, 3, b"", marker=True)))  # second byte 229
        self.assertFalse(is_rtcp(build_rtp(0, 1, 2, 3, b"", marker=True)))  # 128
        self.assertFalse(is_rtcp(b"\x81"))
        self.assertFalse(is_rtcp(b"\x01\xc8\x00\x01"))  # not version 2 (e.g. STUN starts 0x00/0x01)
