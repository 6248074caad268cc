# -*- test-case-name: tests.test_media_srtp -*-
"""sbc.media.srtp: SrtpEndpoint over pylibsrtp."""

from __future__ import annotations

import struct

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.sdes import KEY_LENGTHS, SUITES, SrtpKeying, new_keying
from sbc.media.srtp import SrtpEndpoint, SrtpError

CM80 = "AES_CM_128_HMAC_SHA1_80"
# Authentication tag bytes added to RTP, per suite (RFC 4568 §6.2, RFC 7714 §6.3).
RTP_OVERHEAD = {CM80: 10, "AES_CM_128_HMAC_SHA1_32": 4, "AEAD_AES_128_GCM": 16, "AEAD_AES_256_GCM": 16}
# SRTCP adds the 4-byte E+index word and a tag; the _32 suite still uses an 80-bit SRTCP tag.
RTCP_OVERHEAD = {CM80: 14, "AES_CM_128_HMAC_SHA1_32": 14, "AEAD_AES_128_GCM": 20, "AEAD_AES_256_GCM": 20}


def rtp(seq: int, ssrc: int = 0x11223344, payload: bytes = b"\xd5" * 160, pt: int = 0) -> bytes:
    """A G.711 RTP packet (12-byte header + 160 bytes: 172 in all)."""
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


def rtcp_rr(ssrc: int = 0x11223344) -> bytes:
    """An RTCP receiver report with no report blocks."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def pair(suite: str = CM80, **kw: object) -> tuple[SrtpEndpoint, SrtpEndpoint]:
    """Two endpoints facing each other: what one protects the other unprotects."""
    ours, theirs = new_keying(suite), new_keying(suite)
    return SrtpEndpoint(theirs, ours, **kw), SrtpEndpoint(ours, theirs, **kw)  # type: ignore[arg-type]


class RoundTripTests(SynchronousTestCase):
    def test_rtp_each_suite(self) -> None:
        for suite in SUITES:
            a, b = pair(suite)
            for seq in range(1, 6):
                packet = rtp(seq)
                protected = a.protect_rtp(packet)
                self.assertEqual(len(protected), len(packet) + RTP_OVERHEAD[suite], suite)
                self.assertEqual(protected[:12], packet[:12])  # the header stays in clear
                self.assertNotEqual(protected[12:172], packet[12:])  # the payload does not
                self.assertEqual(b.unprotect_rtp(protected), packet, suite)
                # and the other way
                self.assertEqual(a.unprotect_rtp(b.protect_rtp(packet)), packet, suite)
            self.assertEqual((a.rejected, b.rejected), (0, 0))

    def test_rtcp_each_suite(self) -> None:
        for suite in SUITES:
            a, b = pair(suite)
            for _ in range(3):
                report = rtcp_rr()
                protected = a.protect_rtcp(report)
                self.assertEqual(len(protected), len(report) + RTCP_OVERHEAD[suite], suite)
                self.assertEqual(b.unprotect_rtcp(protected), report, suite)
                self.assertEqual(a.unprotect_rtcp(b.protect_rtcp(report)), report, suite)

    def test_bytes_like_input(self) -> None:
        a, b = pair()
        packet = rtp(9)
        protected = a.protect_rtp(memoryview(packet))
        self.assertEqual(b.unprotect_rtp(bytearray(protected)), packet)

    def test_reordering_within_window(self) -> None:
        a, b = pair()
        protected = [a.protect_rtp(rtp(seq)) for seq in range(10)]
        order = [0, 2, 1, 5, 3, 4, 9, 6, 8, 7]
        self.assertEqual([b.unprotect_rtp(protected[i]) for i in order], [rtp(i) for i in order])

    def test_ssrc_change(self) -> None:
        a, b = pair()
        for ssrc in (1, 2, 3):
            for seq in (100, 101):
                self.assertEqual(b.unprotect_rtp(a.protect_rtp(rtp(seq, ssrc))), rtp(seq, ssrc))

    def test_sequence_wrap(self) -> None:
        # The rollover counter advances on both sides: no loss across 65535 -> 0.
        a, b = pair()
        for seq in range(65530, 65542):
            self.assertEqual(b.unprotect_rtp(a.protect_rtp(rtp(seq))), rtp(seq))

    def test_bridge_two_srtp_sides(self) -> None:
        # Peer A -> SBC side "a" -> SBC side "b" -> peer B: each side has its own keys.
        peer_a, side_a = pair("AEAD_AES_128_GCM")
        side_b, peer_b = pair("AES_CM_128_HMAC_SHA1_32")
        packet = rtp(42)
        plain = side_a.unprotect_rtp(peer_a.protect_rtp(packet))
        assert plain is not None
        self.assertEqual(peer_b.unprotect_rtp(side_b.protect_rtp(plain)), packet)


class RejectTests(SynchronousTestCase):
    def test_tampered_rtp(self) -> None:
        for suite in SUITES:
            a, b = pair(suite)
            protected = a.protect_rtp(rtp(1))
            for index in (1, 5, 20, len(protected) - 1):  # header, payload, tag
                tampered = bytearray(protected)
                tampered[index] ^= 0x01
                self.assertIsNone(b.unprotect_rtp(bytes(tampered)), (suite, index))
            self.assertEqual(b.rejected, 4)
            # the genuine packet still passes: failed attempts do not poison the replay window
            self.assertEqual(b.unprotect_rtp(protected), rtp(1))

    def test_tampered_rtcp(self) -> None:
        for suite in SUITES:
            a, b = pair(suite)
            protected = bytearray(a.protect_rtcp(rtcp_rr()))
            protected[6] ^= 0x80
            self.assertIsNone(b.unprotect_rtcp(bytes(protected)), suite)

    def test_truncated(self) -> None:
        a, b = pair()
        protected = a.protect_rtp(rtp(1))
        self.assertIsNone(b.unprotect_rtp(protected[:-1]))
        self.assertIsNone(b.unprotect_rtp(protected[:12]))
        self.assertIsNone(b.unprotect_rtp(b""))

    def test_replayed_rtp(self) -> None:
        for suite in SUITES:
            a, b = pair(suite)
            protected = a.protect_rtp(rtp(7))
            self.assertEqual(b.unprotect_rtp(protected), rtp(7))
            self.assertIsNone(b.unprotect_rtp(protected), suite)
            self.assertEqual(b.rejected, 1)

    def test_replayed_rtcp(self) -> None:
        a, b = pair()
        protected = a.protect_rtcp(rtcp_rr())
        self.assertIsNotNone(b.unprotect_rtcp(protected))
        self.assertIsNone(b.unprotect_rtcp(protected))

    def test_too_old_for_window(self) -> None:
        a, b = pair()
        old = a.protect_rtp(rtp(0))
        for seq in range(1, 200):
            b.unprotect_rtp(a.protect_rtp(rtp(seq)))
        self.assertIsNone(b.unprotect_rtp(old))

    def test_wrong_key(self) -> None:
        for suite in SUITES:
            a, _ = pair(suite)
            stranger = SrtpEndpoint(new_keying(suite), new_keying(suite))
            self.assertIsNone(stranger.unprotect_rtp(a.protect_rtp(rtp(1))), suite)
            self.assertIsNone(stranger.unprotect_rtcp(a.protect_rtcp(rtcp_rr())), suite)

    def test_wrong_suite(self) -> None:
        # Same key bytes, different tag length: authentication fails.
        key = new_keying(CM80)
        sender = SrtpEndpoint(new_keying(CM80), key)
        receiver = SrtpEndpoint(attrs.evolve(key, suite="AES_CM_128_HMAC_SHA1_32"), new_keying(CM80))
        self.assertIsNone(receiver.unprotect_rtp(sender.protect_rtp(rtp(1))))

    def test_plain_rtp_is_not_srtp(self) -> None:
        _, b = pair()
        self.assertIsNone(b.unprotect_rtp(rtp(1)))
        self.assertIsNone(b.unprotect_rtcp(rtcp_rr()))

    @given(st.binary(max_size=1600))
    def test_unprotect_arbitrary_bytes_never_raises(self, data: bytes) -> None:
        _, b = pair()
        self.assertIsNone(b.unprotect_rtp(data))
        self.assertIsNone(b.unprotect_rtcp(data))

    @given(st.binary(max_size=1600))
    def test_protect_raises_only_srtp_error(self, data: bytes) -> None:
        a, _ = pair()
        for protect in (a.protect_rtp, a.protect_rtcp):
            try:
                out = protect(data)
            except SrtpError:
                continue
            self.assertGreater(len(out), len(data))

    def test_protect_duplicate_index_refused(self) -> None:
        a, b = pair()
        first = a.protect_rtp(rtp(5))
        self.assertRaises(SrtpError, a.protect_rtp, rtp(5, payload=b"\x00" * 160))
        self.assertRaises(SrtpError, a.protect_rtp, rtp(5))
        # the stream goes on
        self.assertEqual(b.unprotect_rtp(first), rtp(5))
        self.assertEqual(b.unprotect_rtp(a.protect_rtp(rtp(6))), rtp(6))

    def test_protect_too_long(self) -> None:
        a, _ = pair()
        self.assertRaises(SrtpError, a.protect_rtp, rtp(1, payload=b"\x00" * 1400))
        self.assertRaises(SrtpError, a.protect_rtp, b"\x80")

    def test_bad_keying(self) -> None:
        good = new_keying(CM80)
        self.assertRaises(ValueError, SrtpEndpoint, SrtpKeying("NULL", b"x" * 30), good)
        self.assertRaises(ValueError, SrtpEndpoint, good, SrtpKeying(CM80, b"x" * 29))
        self.assertRaises(ValueError, SrtpEndpoint, SrtpKeying("AEAD_AES_128_GCM", b"x" * 30), good)


class LimitTests(SynchronousTestCase):
    def test_inbound_lifetime(self) -> None:
        ours, theirs = new_keying(CM80), attrs.evolve(new_keying(CM80), lifetime=3)
        peer = SrtpEndpoint(ours, attrs.evolve(theirs, lifetime=None))  # a peer overrunning its lifetime
        side = SrtpEndpoint(theirs, ours)
        got = [side.unprotect_rtp(peer.protect_rtp(rtp(seq))) for seq in range(4)]
        self.assertEqual(got, [rtp(0), rtp(1), rtp(2), None])

    def test_outbound_lifetime(self) -> None:
        ours = attrs.evolve(new_keying("AEAD_AES_256_GCM"), lifetime=2)
        side = SrtpEndpoint(new_keying("AEAD_AES_256_GCM"), ours)
        side.protect_rtp(rtp(0))
        side.protect_rtp(rtp(1))
        self.assertRaises(SrtpError, side.protect_rtp, rtp(2))
        side.protect_rtcp(rtcp_rr())
        side.protect_rtcp(rtcp_rr())
        self.assertRaises(SrtpError, side.protect_rtcp, rtcp_rr())

    def test_failed_packets_do_not_spend_lifetime(self) -> None:
        theirs = attrs.evolve(new_keying(CM80), lifetime=1)
        side = SrtpEndpoint(theirs, new_keying(CM80))
        peer = SrtpEndpoint(new_keying(CM80), attrs.evolve(theirs, lifetime=None))
        for _ in range(5):
            self.assertIsNone(side.unprotect_rtp(b"\x80" * 40))
        self.assertEqual(side.unprotect_rtp(peer.protect_rtp(rtp(1))), rtp(1))

    def test_ssrc_cap_outbound(self) -> None:
        a, b = pair(max_ssrcs=2)
        a.protect_rtp(rtp(1, ssrc=1))
        a.protect_rtcp(rtcp_rr(ssrc=2))
        self.assertRaises(SrtpError, a.protect_rtp, rtp(1, ssrc=3))
        self.assertRaises(SrtpError, a.protect_rtcp, rtcp_rr(ssrc=3))
        self.assertEqual(b.unprotect_rtp(a.protect_rtp(rtp(2, ssrc=1))), rtp(2, ssrc=1))
        self.assertEqual(b.unprotect_rtp(a.protect_rtp(rtp(2, ssrc=2))), rtp(2, ssrc=2))

    def test_ssrc_cap_inbound_counts_authenticated_only(self) -> None:
        ours, theirs = new_keying(CM80), new_keying(CM80)
        a = SrtpEndpoint(ours, theirs)  # the peer: no cap of ours
        b = SrtpEndpoint(theirs, ours, max_ssrcs=2)
        # forged packets from many SSRCs do not fill the cap
        for ssrc in range(10, 20):
            self.assertIsNone(b.unprotect_rtp(rtp(1, ssrc=ssrc) + b"\x00" * 10))
        self.assertIsNotNone(b.unprotect_rtp(a.protect_rtp(rtp(1, ssrc=1))))
        self.assertIsNotNone(b.unprotect_rtp(a.protect_rtp(rtp(1, ssrc=2))))
        # a third genuine SSRC is over the cap
        self.assertIsNone(b.unprotect_rtp(a.protect_rtp(rtp(1, ssrc=3))))
        self.assertIsNotNone(b.unprotect_rtp(a.protect_rtp(rtp(2, ssrc=1))))

    def test_update_inbound(self) -> None:
        a, b = pair()
        self.assertIsNotNone(b.unprotect_rtp(a.protect_rtp(rtp(1))))
        new_key = new_keying("AEAD_AES_128_GCM")
        rekeyed_sender = SrtpEndpoint(new_keying(CM80), new_key)
        b.update_inbound(new_key)
        self.assertEqual(b.inbound_suite, "AEAD_AES_128_GCM")
        self.assertEqual(b.unprotect_rtp(rekeyed_sender.protect_rtp(rtp(2))), rtp(2))
        self.assertIsNone(b.unprotect_rtp(a.protect_rtp(rtp(3))))  # the old key is gone
        # outbound unchanged
        self.assertEqual(a.unprotect_rtp(b.protect_rtp(rtp(4))), rtp(4))


class SecrecyTests(SynchronousTestCase):
    def test_repr_has_no_key(self) -> None:
        ours, theirs = new_keying(CM80), new_keying("AEAD_AES_256_GCM")
        endpoint = SrtpEndpoint(theirs, ours)
        text = repr(endpoint)
        self.assertIn("AEAD_AES_256_GCM", text)
        for key in (ours.key, theirs.key):
            self.assertNotIn(repr(key), text)
            self.assertNotIn(key.hex(), text)
        self.assertFalse(hasattr(endpoint, "__dict__"))

    def test_key_lengths_match_libsrtp(self) -> None:
        # SDES key lengths are what pylibsrtp expects for each profile: one byte short fails.
        for suite in SUITES:
            short = SrtpKeying(suite, b"k" * (KEY_LENGTHS[suite] - 1))
            self.assertRaises(ValueError, SrtpEndpoint, new_keying(suite), short)
