# -*- test-case-name: tests.test_sip_sdp -*-
"""Tests for sbc.sip.sdp: parsing, byte-exact round trips, views, rewrites, offer/answer."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SipParseError
from sbc.sip.sdp import (
    ICE_ATTRIBUTES,
    Codec,
    Connection,
    Crypto,
    Direction,
    Group,
    MediaSection,
    Origin,
    Rtcp,
    RtpMap,
    SdpLine,
    SessionDescription,
    TelephoneEvent,
    match_answer,
    parse_sdp,
    serialise_sdp,
)
from tests.sdp_strategies import sdp_soup, session_descriptions

SHARED = Path(__file__).resolve().parents[2] / "shared"  # shared/ sits beside the checkout


def crlf(text: str) -> bytes:
    """A CRLF SDP body from an indented triple-quoted string (one line per line)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


def body_of(path: Path) -> bytes:
    """The body of a stored SIP message (after the first empty line, LF or CRLF)."""
    data = path.read_bytes()
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(separator)
        if found:
            return body
    raise AssertionError(f"no body in {path}")


G711 = crlf(
    """
    v=0
    o=pbx 2890844526 2890844526 IN IP4 192.0.2.10
    s=Talk
    c=IN IP4 192.0.2.10
    t=0 0
    m=audio 49170 RTP/AVP 0 8 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=maxptime:40
    a=sendrecv
    """
)

# RFC 4568 style SDES offer: two audio crypto lines (one with MKI, lifetime) and session params.
SRTP = crlf(
    """
    v=0
    o=sam 2890844526 2890842807 IN IP4 192.0.2.5
    s=SRTP Discussion
    c=IN IP4 192.0.2.12
    t=2873397496 2873404696
    m=audio 49170 RTP/SAVP 0 18 96
    a=rtpmap:0 PCMU/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:96 telephone-event/8000
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4
    a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4 FEC_ORDER=FEC_SRTP
    a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31;inline:QUJjZGVmZ2hpams1bG1ub3BxcnN0dXZ3eHl6MTIz|2^31 UNENCRYPTED_SRTCP
    m=video 51372 RTP/SAVP 31
    a=rtpmap:31 H261/90000
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32
    """
)
SECRETS = (
    "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
    "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
    "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
    "QUJjZGVmZ2hpams1bG1ub3BxcnN0dXZ3eHl6MTIz",
)

WEBRTC = crlf(
    """
    v=0
    o=- 4611731400430051336 2 IN IP4 127.0.0.1
    s=-
    t=0 0
    a=group:BUNDLE 0 1
    a=extmap-allow-mixed
    a=msid-semantic: WMS stream
    a=ice-options:trickle
    m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
    c=IN IP4 0.0.0.0
    a=rtcp:9 IN IP4 0.0.0.0
    a=candidate:1467250027 1 udp 2122260223 192.0.2.33 46243 typ host generation 0
    a=candidate:435653019 1 tcp 1845501695 198.51.100.7 9 typ srflx raddr 192.0.2.33 rport 0 tcptype active generation 0
    a=candidate:2 1 udp 41885439 203.0.113.9 3478 typ relay raddr 198.51.100.7 rport 46243
    a=end-of-candidates
    a=ice-ufrag:EsAw
    a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
    a=ice-options:trickle
    a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
    a=setup:actpass
    a=mid:0
    a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
    a=sendrecv
    a=msid:stream track0
    a=rtcp-mux
    a=rtpmap:111 opus/48000/2
    a=rtcp-fb:111 transport-cc
    a=fmtp:111 minptime=10;useinbandfec=1
    a=rtpmap:63 red/48000/2
    a=fmtp:63 111/111
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:13 CN/8000
    a=rtpmap:110 telephone-event/48000
    a=rtpmap:126 telephone-event/8000
    a=ssrc:1001 cname:abcd
    m=video 9 UDP/TLS/RTP/SAVPF 96 97
    c=IN IP4 0.0.0.0
    a=ice-ufrag:EsAw
    a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
    a=mid:1
    a=recvonly
    a=rtcp-mux
    a=rtpmap:96 VP8/90000
    a=rtcp-fb:96 nack
    a=rtpmap:97 rtx/90000
    a=fmtp:97 apt=96
    """
)


class RealisticParseTests(SynchronousTestCase):
    def test_g711_views(self) -> None:
        sd = parse_sdp(G711)
        self.assertEqual(sd.version, 0)
        self.assertEqual(
            sd.origin, Origin("pbx", "2890844526", 2890844526, "IN", "IP4", "192.0.2.10")
        )
        self.assertEqual(sd.session_name, b"Talk")
        self.assertEqual(sd.connection, Connection("IN", "IP4", "192.0.2.10"))
        self.assertEqual(sd.connection.ip, IPv4Address("192.0.2.10"))
        (audio,) = sd.media
        self.assertEqual(
            (audio.media, audio.port, audio.port_count, audio.proto, audio.formats),
            ("audio", 49170, None, "RTP/AVP", ("0", "8", "101")),
        )
        self.assertEqual(audio.payload_types, (0, 8, 101))
        self.assertEqual(audio.rtpmap()[101], RtpMap(101, "telephone-event", 8000))
        self.assertEqual(audio.fmtp(), {"101": "0-16"})
        self.assertEqual(
            audio.codecs(),
            (
                Codec(0, "PCMU", 8000),
                Codec(8, "PCMA", 8000),
                Codec(101, "telephone-event", 8000, None, "0-16"),
            ),
        )
        self.assertEqual((audio.ptime, audio.maxptime), (20, 40))
        self.assertEqual(sd.direction(0), Direction.SENDRECV)
        self.assertIsNone(sd.media[0].connection)
        self.assertEqual(sd.connection_for(0), sd.connection)
        self.assertFalse(audio.rejected)
        self.assertFalse(sd.on_hold)
        self.assertEqual(audio.attribute("ptime"), b"20")
        self.assertEqual(audio.attributes("sendrecv"), (None,))
        self.assertTrue(audio.has_attribute("SENDRECV"))

    def test_srtp_crypto_lines(self) -> None:
        sd = parse_sdp(SRTP)
        audio, video = sd.media
        cryptos = audio.crypto()
        self.assertEqual([c.tag for c in cryptos], [1, 2, 3])
        self.assertEqual(
            [c.suite for c in cryptos],
            ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AES_256_CM_HMAC_SHA1_80"],
        )
        self.assertEqual(cryptos[0].key_params, f"inline:{SECRETS[0]}|2^20|1:4")
        self.assertEqual(cryptos[0].inline_keys, (SECRETS[0],))
        self.assertEqual(cryptos[1].session_params, ("FEC_ORDER=FEC_SRTP",))
        self.assertEqual(cryptos[2].inline_keys, (SECRETS[2], SECRETS[3]))
        self.assertEqual(cryptos[2].session_params, ("UNENCRYPTED_SRTCP",))
        self.assertEqual(len(video.crypto()), 1)
        self.assertEqual(audio.telephone_event(), TelephoneEvent(96, 8000, None))
        self.assertEqual(audio.codecs()[1], Codec(18, "G729", 8000, None, "annexb=no"))
        self.assertEqual(video.codecs(), (Codec(31, "H261", 90000),))

    def test_secrets_never_in_repr_or_str(self) -> None:
        sd = parse_sdp(SRTP)
        keyed = parse_sdp(
            SRTP.replace(b"t=2873397496 2873404696\r\n", b"t=0 0\r\nk=base64:c2VjcmV0a2V5\r\n")
        )
        texts = [repr(sd), str(sd), repr(sd.media[0]), str(sd.media[0].lines[5]),
                 repr(sd.media[0].crypto()), str(sd.media[0].crypto()[2]), repr(keyed)]
        for text in texts:
            for secret in SECRETS + ("c2VjcmV0a2V5",):
                self.assertNotIn(secret, text)
        self.assertIn("AES_CM_128_HMAC_SHA1_80", repr(sd.media[0].crypto()[0]))
        self.assertIn("inline:<redacted>", repr(sd))
        webrtc = parse_sdp(WEBRTC)
        self.assertNotIn("bP+XJMM09aR8AiX1jdukzR6Y", repr(webrtc))
        # ...but the wire form keeps them.
        self.assertIn(SECRETS[0].encode(), sd.to_bytes())

    def test_webrtc_ice_offer(self) -> None:
        sd = parse_sdp(WEBRTC)
        self.assertEqual(sd.groups(), (Group("BUNDLE", ("0", "1")),))
        self.assertEqual(sd.ice_options, ("trickle",))
        self.assertFalse(sd.ice_lite)
        self.assertTrue(sd.has_ice)
        audio, video = sd.media
        self.assertEqual((audio.mid, video.mid), ("0", "1"))
        self.assertEqual(sd.media_by_mid("1"), 1)
        self.assertIsNone(sd.media_by_mid("7"))
        self.assertEqual(audio.ice_ufrag, "EsAw")
        self.assertEqual(audio.ice_pwd, "bP+XJMM09aR8AiX1jdukzR6Y")
        self.assertTrue(audio.end_of_candidates)
        self.assertFalse(video.end_of_candidates)
        host, srflx, relay = audio.candidates()
        self.assertEqual(
            (host.foundation, host.component, host.transport, host.priority, host.address,
             host.port, host.type),
            ("1467250027", 1, "udp", 2122260223, "192.0.2.33", 46243, "host"),
        )
        self.assertEqual(host.extensions, (("generation", "0"),))
        self.assertEqual((srflx.related_address, srflx.related_port), ("192.0.2.33", 0))
        self.assertIn(("tcptype", "active"), srflx.extensions)
        self.assertEqual(relay.type, "relay")
        self.assertEqual(audio.rtcp, Rtcp(9, "IN", "IP4", "0.0.0.0"))
        self.assertTrue(audio.rtcp_mux)
        self.assertTrue(audio.fingerprint.startswith("sha-256 D2:FA"))
        self.assertEqual(audio.rtpmap()[111], RtpMap(111, "opus", 48000, 2))
        self.assertEqual(
            audio.telephone_events(),
            (TelephoneEvent(110, 48000), TelephoneEvent(126, 8000)),
        )
        self.assertEqual(sd.direction(1), Direction.RECVONLY)
        self.assertEqual(video.codecs()[1], Codec(97, "rtx", 90000, None, "apt=96"))
        # c=0.0.0.0 with ICE is the trickle "no default candidate yet" placeholder, not hold.
        self.assertTrue(sd.connection_for(0).is_hold_address)
        self.assertFalse(sd.is_media_on_hold(0))
        self.assertTrue(sd.is_media_on_hold(1) is False and sd.on_hold is False)
        self.assertTrue(sd.without_ice().is_media_on_hold(0))  # RFC 2543 hold without ICE

    def test_rfc5118_ipv6_in_sdp(self) -> None:
        body = body_of(SHARED / "torture/rfc5118/ipv6-in-sdp.dat")
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        self.assertEqual(sd.origin.addrtype, "IP6")
        self.assertEqual(sd.origin.address, "2001:db8::20")
        self.assertEqual(sd.connection, Connection("IN", "IP6", "2001:db8::20"))
        self.assertEqual(sd.connection.ip, IPv6Address("2001:db8::20"))
        self.assertEqual([m.media for m in sd.media], ["audio", "video"])
        self.assertEqual(sd.media[0].codecs(), (Codec(2, "G726-32", 8000),))
        self.assertEqual(sd.media[1].rtpmap(), {107: RtpMap(107, "H263-1998", 90000)})

    def test_rfc5118_multiple_ip_versions_in_sdp(self) -> None:
        body = body_of(SHARED / "torture/rfc5118/mult-ip-in-sdp.dat")
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        self.assertIsNone(sd.connection)
        self.assertEqual(sd.connection_for(0), Connection("IN", "IP4", "192.0.2.1"))
        self.assertEqual(sd.connection_for(1), Connection("IN", "IP6", "2001:db8::1"))
        self.assertIsNone(sd.origin.address and sd.connection)
        self.assertEqual(sd.origin.address, "host.example.com")
        self.assertIsNone(Connection("IN", "IP4", "host.example.com").ip)
        self.assertFalse(Connection("IN", "IP4", "host.example.com").is_hold_address)
        self.assertTrue(Connection("IN", "IP6", "::").is_hold_address)

    def test_vendor_messages(self) -> None:
        bodies = {p.name: body_of(p) for p in sorted((SHARED / "vendor-messages").glob("*INVITE*.txt"))}
        self.assertGreaterEqual(len(bodies), 3)
        for name, body in bodies.items():
            for variant in (body, body.replace(b"\n", b"\r\n")):
                sd = parse_sdp(variant)
                self.assertEqual(sd.to_bytes(), variant, name)
                self.assertEqual(sd.media[0].media, "audio", name)
                self.assertEqual(sd.media[0].telephone_event(8000).payload_type, 101, name)

        teams = parse_sdp(bodies["teams-INVITE-1.txt"])
        (audio,) = teams.media
        self.assertEqual(audio.proto, "RTP/SAVP")
        self.assertEqual([c.encoding for c in audio.codecs()], ["PCMU", "PCMA", "G722", "telephone-event", "CN"])
        self.assertEqual(audio.crypto()[0].suite, "AES_CM_128_HMAC_SHA1_80")
        self.assertNotIn(audio.crypto()[0].inline_keys[0], repr(teams))
        self.assertTrue(audio.rtcp_mux)

        chime1 = parse_sdp(bodies["chime-INVITE-1.txt"])
        self.assertEqual(chime1.media[0].rtcp, Rtcp(36489))
        self.assertEqual(chime1.origin.username, "Sonus_UAC")

        chime2 = parse_sdp(bodies["chime-INVITE-2.txt"])
        self.assertTrue(chime2.has_ice)
        self.assertEqual(len(chime2.media[0].candidates()), 4)
        stripped = chime2.without_ice()
        self.assertFalse(stripped.has_ice)
        self.assertEqual(len(stripped.media[0].lines), len(chime2.media[0].lines) - 6)
        self.assertEqual(stripped.media[0].maxptime, 150)


class RoundTripTests(SynchronousTestCase):
    def test_crlf_identity(self) -> None:
        for body in (G711, SRTP, WEBRTC):
            self.assertEqual(parse_sdp(body).to_bytes(), body)
            self.assertEqual(bytes(parse_sdp(body)), body)
            self.assertEqual(serialise_sdp(parse_sdp(body)), body)

    def test_bare_lf_kept(self) -> None:
        body = G711.replace(b"\r\n", b"\n")
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        rewritten = sd.with_media_attribute(0, "rtcp-mux").to_bytes()
        self.assertNotIn(b"\r", rewritten)
        self.assertIn(b"\na=rtcp-mux\n", rewritten)

    def test_mixed_line_ends_and_oddities_kept(self) -> None:
        body = (
            b"v=0\n"
            b"o=- 1 1 IN IP4 192.0.2.1  \r\n"
            b"s= \r\n"
            b"\r\n"
            b"c=IN IP4 192.0.2.1\t\r\n"
            b"x=unknown line type\r\n"
            b"m=audio 5004 RTP/AVP 0 \r\n"
            b"a=weird:\xff\xfe bytes\n"
            b"b=TIAS:64000\r\n"
            b"a=sendonly"
        )
        sd = parse_sdp(body)
        self.assertEqual(sd.to_bytes(), body)
        self.assertEqual(sd.session[3], SdpLine("", b"", b"\r\n"))
        self.assertEqual(sd.session[5], SdpLine("x", b"unknown line type", b"\r\n"))
        self.assertEqual(sd.media[0].lines[-1], SdpLine("a", b"sendonly", b""))
        self.assertEqual(sd.connection.address, "192.0.2.1")
        self.assertEqual(sd.direction(0), Direction.SENDONLY)
        self.assertEqual(sd.bandwidths(0), (("TIAS", 64000),))
        # Appending after a last line without line end gives it one.
        appended = sd.with_media_attribute(0, "ptime", b"20").to_bytes()
        self.assertTrue(appended.endswith(b"a=sendonly\na=ptime:20\r\n"), appended)
        unterminated = parse_sdp(G711[:-2]).with_media_attribute(0, "rtcp-mux").to_bytes()
        self.assertTrue(unterminated.endswith(b"a=sendrecv\r\na=rtcp-mux\r\n"), unterminated)
        self.assertEqual(parse_sdp(appended).media[0].ptime, 20)

    @given(session_descriptions())
    def test_parse_serialise_property(self, sd: SessionDescription) -> None:
        data = sd.to_bytes()
        self.assertEqual(parse_sdp(data), sd)
        self.assertEqual(parse_sdp(data).to_bytes(), data)


class LiberalTests(SynchronousTestCase):
    def test_missing_t_and_s_lines(self) -> None:
        sd = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n")
        self.assertEqual(sd.media[0].port, 4000)
        self.assertIsNone(sd.session_name)

    def test_attributes_before_connection(self) -> None:
        sd = parse_sdp(
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\na=sendonly\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            b"m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\nc=IN IP4 192.0.2.2\r\nb=TIAS:64000\r\n"
        )
        self.assertEqual(sd.connection_for(0).address, "192.0.2.2")
        self.assertEqual(sd.bandwidths(0), (("TIAS", 64000),))
        self.assertEqual(sd.direction(0), Direction.SENDONLY)  # session default inherited

    def test_bracketed_ipv6_tolerated(self) -> None:
        sd = parse_sdp(b"v=0\r\no=- 1 1 IN IP6 ::1\r\nc=IN IP6 [2001:db8::5]\r\nm=audio 4000 RTP/AVP 0\r\n")
        self.assertEqual(sd.connection.address, "2001:db8::5")

    def test_multicast_connection(self) -> None:
        four = parse_sdp(b"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 224.2.1.1/127/3\nm=audio 4000/2 RTP/AVP 0\n")
        self.assertEqual(four.connection, Connection("IN", "IP4", "224.2.1.1", 127, 3))
        self.assertEqual(four.media[0].port_count, 2)
        six = parse_sdp(b"v=0\no=- 1 1 IN IP6 ::1\nc=IN IP6 ff15::101/3\nm=audio 4000 RTP/AVP 0\n")
        self.assertEqual(six.connection, Connection("IN", "IP6", "ff15::101", None, 3))

    def test_non_rtp_formats(self) -> None:
        sd = parse_sdp(
            b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.1\r\nm=image 6000 udptl t38\r\n"
            b"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        )
        self.assertEqual(sd.media[0].formats, ("t38",))
        self.assertEqual(sd.media[0].payload_types, ())
        self.assertEqual(sd.media[0].codecs(), ())
        self.assertEqual(sd.media[1].formats, ("webrtc-datachannel",))

    def test_malformed_attribute_values_are_skipped(self) -> None:
        sd = parse_sdp(
            b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0 96\r\n"
            b"a=rtpmap:96\r\na=rtpmap:x PCMU/8000\r\na=crypto:x y\r\na=rtcp:port\r\na=ptime:x\r\n"
            b"a=candidate:garbage\r\n"
        )
        audio = sd.media[0]
        self.assertEqual(audio.rtpmap(), {})
        self.assertEqual(audio.codecs(), (Codec(0, "PCMU", 8000), Codec(96, None, None)))
        self.assertEqual((audio.crypto(), audio.rtcp, audio.ptime, audio.candidates()), ((), None, None, ()))

    def test_rejected_stream_needs_no_connection(self) -> None:
        sd = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 0 RTP/AVP 0\r\n")
        self.assertTrue(sd.media[0].rejected)
        self.assertFalse(sd.on_hold)


class ErrorTests(SynchronousTestCase):
    HEAD = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

    def assertStatus(self, body: bytes, status: int) -> None:
        error = self.assertRaises(SipParseError, parse_sdp, body)
        self.assertEqual(error.status, status, error.reason)

    def test_syntax_errors_are_400(self) -> None:
        for body in (
            b"",
            b"\r\n  \r\n",
            b"o=- 1 1 IN IP4 h\r\nv=0\r\n",  # v= not first
            b"v=x\r\no=- 1 1 IN IP4 h\r\n",
            b"v=0\r\ns=-\r\n",  # no o=
            b"v=0\r\no=- 1 1 IN\r\n",
            b"v=0\r\no=- 1 x IN IP4 h\r\n",  # sess-version not numeric
            self.HEAD + b"this line has no equals sign\r\n",
            self.HEAD + b"ab=two letter type\r\n",
            self.HEAD + b"=value\r\n",
            self.HEAD + b" a=leading space\r\n",
            self.HEAD + b"m=audio x RTP/AVP 0\r\n",
            self.HEAD + b"m=audio 65536 RTP/AVP 0\r\n",
            self.HEAD + b"m=audio -1 RTP/AVP 0\r\n",
            self.HEAD + b"m=audio 4000/x RTP/AVP 0\r\n",
            self.HEAD + b"m=audio 4000/0 RTP/AVP 0\r\n",
            self.HEAD + b"m=audio 4000\r\n",
            self.HEAD + b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4\r\n",
        ):
            self.assertStatus(body, 400)

    def test_semantic_errors_are_488(self) -> None:
        for body in (
            b"v=1\r\no=- 1 1 IN IP4 h\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000 RTP/AVP 0\r\n",  # no connection address
            b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4 2001:db8::1\r\nm=audio 4000 RTP/AVP 0\r\n",
            b"v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP6 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n",
        ):
            self.assertStatus(body, 488)

    def test_error_reason_hides_line_content(self) -> None:
        error = self.assertRaises(SipParseError, parse_sdp, self.HEAD + b"secretkeymaterial\r\n")
        self.assertNotIn("secretkeymaterial", str(error))

    def test_type_error_for_str(self) -> None:
        self.assertRaises(TypeError, parse_sdp, "v=0\r\n")

    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_raise_only_parse_error(self, data: bytes) -> None:
        try:
            sd = parse_sdp(data)
        except SipParseError as error:
            self.assertIn(error.status, (400, 488))
        else:
            self.assertEqual(sd.to_bytes(), data)

    @given(sdp_soup())
    def test_sdp_like_bytes_views_and_rewrites_never_raise(self, data: bytes) -> None:
        try:
            sd = parse_sdp(data)
        except SipParseError as error:
            self.assertIn(error.status, (400, 488))
            return
        self.assertEqual(sd.to_bytes(), data)
        exercise_views(sd)
        rewritten = sd.bump_version().without_ice().with_connection("2001:db8::9").with_direction(
            Direction.INACTIVE
        )
        for index in range(len(sd.media)):
            rewritten = rewritten.with_media_port(index, 40000).with_rtcp(index, 40001)
            rewritten = rewritten.without_crypto(index)
        out = rewritten.to_bytes()
        again = parse_sdp(out)
        self.assertEqual(again.to_bytes(), out)
        self.assertEqual(again.origin.sess_version, sd.origin.sess_version + 1)
        exercise_views(again)


def exercise_views(sd: SessionDescription) -> None:
    """Call every parsed view; any exception fails the calling test."""
    sd.version, sd.origin, sd.session_name, sd.connection, sd.session_direction
    sd.ice_lite, sd.ice_options, sd.ice_ufrag, sd.ice_pwd, sd.has_ice, sd.groups(), sd.on_hold
    sd.bandwidths(), repr(sd)
    for index, m in enumerate(sd.media):
        m.media, m.port, m.port_count, m.proto, m.formats, m.payload_types, m.rejected
        m.connection, m.own_direction, m.rtpmap(), m.fmtp(), m.codecs(), m.telephone_events()
        m.telephone_event(8000), m.ptime, m.maxptime, m.rtcp, m.rtcp_mux, m.crypto()
        m.ice_ufrag, m.ice_pwd, m.candidates(), m.end_of_candidates, m.mid, m.fingerprint
        sd.direction(index), sd.connection_for(index), sd.is_media_on_hold(index)
        sd.bandwidths(index)
        for c in m.crypto():
            c.inline_keys


class TelephoneEventTests(SynchronousTestCase):
    def sdp(self, formats: str, *attributes: str) -> MediaSection:
        return parse_sdp(
            crlf(
                "v=0\no=- 1 1 IN IP4 h\nc=IN IP4 192.0.2.1\n"
                f"m=audio 4000 RTP/AVP {formats}\n" + "\n".join(attributes)
            )
        ).media[0]

    def test_pt_96(self) -> None:
        audio = self.sdp("8 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15")
        self.assertEqual(audio.telephone_event(8000), TelephoneEvent(96, 8000, "0-15"))
        self.assertEqual(audio.telephone_events(), (TelephoneEvent(96, 8000, "0-15"),))

    def test_two_clock_rates(self) -> None:
        audio = self.sdp(
            "111 9 101 110",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:101 telephone-event/48000",
            "a=rtpmap:110 telephone-event/8000",
        )
        self.assertEqual(audio.telephone_event(8000).payload_type, 110)
        self.assertEqual(audio.telephone_event(48000).payload_type, 101)
        self.assertEqual(audio.telephone_event().payload_type, 101)  # first in m= order
        self.assertIsNone(audio.telephone_event(16000))

    def test_none_without_telephone_event(self) -> None:
        audio = self.sdp("0 101", "a=rtpmap:0 PCMU/8000")  # PT 101 unmapped: not assumed
        self.assertEqual(audio.telephone_events(), ())
        self.assertIsNone(audio.telephone_event(8000))

    def test_rtpmap_for_format_not_on_m_line_is_ignored(self) -> None:
        audio = self.sdp("0", "a=rtpmap:101 telephone-event/8000")
        self.assertIsNone(audio.telephone_event())

    def test_case_insensitive_encoding(self) -> None:
        audio = self.sdp("100", "a=rtpmap:100 Telephone-Event/8000")
        self.assertEqual(audio.telephone_event(8000).payload_type, 100)


class HoldTests(SynchronousTestCase):
    def make(self, session_extra: str = "", media_extra: str = "", c: str = "192.0.2.1") -> SessionDescription:
        return parse_sdp(
            crlf(
                f"v=0\no=- 1 1 IN IP4 h\nc=IN IP4 {c}\nt=0 0\n{session_extra}\n"
                f"m=audio 4000 RTP/AVP 0\n{media_extra}\nm=video 0 RTP/AVP 31\n"
            ).replace(b"\r\n\r\n", b"\r\n")
        )

    def test_not_on_hold(self) -> None:
        for sd in (self.make(), self.make(media_extra="a=sendrecv"), self.make(media_extra="a=recvonly")):
            self.assertFalse(sd.on_hold)
            self.assertFalse(sd.is_media_on_hold(0))

    def test_sendonly_and_inactive(self) -> None:
        for direction in ("sendonly", "inactive"):
            sd = self.make(media_extra=f"a={direction}")
            self.assertTrue(sd.is_media_on_hold(0))
            self.assertTrue(sd.on_hold)  # the rejected video stream does not count
            self.assertFalse(sd.is_media_on_hold(1))

    def test_session_level_direction_inherited(self) -> None:
        sd = self.make(session_extra="a=inactive")
        self.assertEqual(sd.session_direction, Direction.INACTIVE)
        self.assertEqual(sd.direction(0), Direction.INACTIVE)
        self.assertTrue(sd.on_hold)
        overridden = self.make(session_extra="a=inactive", media_extra="a=sendrecv")
        self.assertFalse(overridden.on_hold)

    def test_rfc2543_zero_address(self) -> None:
        sd = self.make(c="0.0.0.0")
        self.assertTrue(sd.is_media_on_hold(0))
        self.assertTrue(sd.on_hold)
        media_level = self.make(media_extra="c=IN IP4 0.0.0.0")
        self.assertTrue(media_level.on_hold)

    def test_hold_round_trip_through_rewrites(self) -> None:
        sd = self.make()
        held = sd.with_direction(Direction.SENDONLY, 0)
        self.assertTrue(held.on_hold)
        self.assertFalse(held.with_direction(Direction.SENDRECV, 0).on_hold)
        self.assertEqual(Direction.SENDONLY.reversed(), Direction.RECVONLY)
        self.assertEqual(Direction.INACTIVE.reversed(), Direction.INACTIVE)


class RewriteTests(SynchronousTestCase):
    def test_untouched_lines_stay_identical(self) -> None:
        sd = parse_sdp(G711)
        out = sd.with_media_port(0, 30000).to_bytes()
        self.assertEqual(out, G711.replace(b"m=audio 49170 ", b"m=audio 30000 "))

    def test_session_connection_ipv4_and_ipv6(self) -> None:
        sd = parse_sdp(G711)
        v6 = sd.with_session_connection("2001:DB8::1")
        self.assertEqual(v6.connection, Connection("IN", "IP6", "2001:db8::1"))
        self.assertIn(b"\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n", v6.to_bytes())
        v4 = v6.with_session_connection(IPv4Address("198.51.100.1"))
        self.assertEqual(v4.to_bytes(), G711.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 198.51.100.1"))
        bracketed = sd.with_session_connection("[2001:db8::2]")
        self.assertEqual(bracketed.connection.address, "2001:db8::2")
        self.assertRaises(ValueError, sd.with_session_connection, "bad address")
        self.assertRaises(ValueError, sd.with_session_connection, "")

    def test_session_connection_inserted_before_t(self) -> None:
        body = body_of(SHARED / "torture/rfc5118/mult-ip-in-sdp.dat")
        sd = parse_sdp(body).with_session_connection("203.0.113.5")
        self.assertEqual([l.type for l in sd.session], ["v", "o", "s", "c", "t"])
        # Media-level c= still overrides.
        self.assertEqual(sd.connection_for(1).address, "2001:db8::1")

    def test_with_connection_everywhere(self) -> None:
        body = body_of(SHARED / "torture/rfc5118/mult-ip-in-sdp.dat")
        sd = parse_sdp(body).with_connection("2001:db8::77")
        for index in range(2):
            self.assertEqual(sd.connection_for(index), Connection("IN", "IP6", "2001:db8::77"))
        self.assertEqual(sum(1 for l in sd.all_lines() if l.type == "c"), 3)

    def test_media_connection(self) -> None:
        sd = parse_sdp(G711).with_media_connection(0, "192.0.2.99")
        audio = sd.media[0]
        self.assertEqual([l.type for l in audio.lines[:3]], ["m", "c", "a"])
        self.assertEqual(sd.connection_for(0).address, "192.0.2.99")
        self.assertEqual(sd.connection.address, "192.0.2.10")
        self.assertIsNone(audio.without_connection().connection)

    def test_origin_address_and_bump_version(self) -> None:
        sd = parse_sdp(G711)
        bumped = sd.bump_version()
        self.assertEqual(bumped.origin.sess_version, 2890844527)
        self.assertEqual(bumped.origin.sess_id, "2890844526")
        self.assertEqual(bumped.bump_version().origin.sess_version, 2890844528)
        self.assertEqual(
            bumped.to_bytes(),
            G711.replace(b"o=pbx 2890844526 2890844526", b"o=pbx 2890844526 2890844527"),
        )
        hidden = sd.with_origin_address("2001:db8::3")
        self.assertEqual((hidden.origin.addrtype, hidden.origin.address), ("IP6", "2001:db8::3"))
        self.assertIn(b"o=pbx 2890844526 2890844526 IN IP6 2001:db8::3\r\n", hidden.to_bytes())

    def test_port_and_rejection(self) -> None:
        sd = parse_sdp(G711)
        self.assertEqual(sd.with_media_port(0, 0).media[0].port, 0)
        self.assertTrue(sd.media[0].rejected_copy().rejected)
        self.assertEqual(sd.media[0].rejected_copy().formats, ("0", "8", "101"))
        counted = sd.media[0].with_port(5000, 2)
        self.assertEqual((counted.port, counted.port_count), (5000, 2))
        self.assertRaises(ValueError, sd.media[0].with_port, 70000)
        # A rejected stream survives a round trip and rewrites of other streams.
        two = parse_sdp(G711 + b"m=video 0 RTP/AVP 31\r\n")
        self.assertTrue(parse_sdp(two.with_media_port(0, 1234).to_bytes()).media[1].rejected)

    def test_attributes_set_and_remove(self) -> None:
        sd = parse_sdp(G711)
        audio = sd.media[0].with_attribute("ptime", b"30")
        self.assertEqual(audio.ptime, 30)
        self.assertEqual(audio.lines[5], SdpLine("a", b"ptime:30"))  # replaced in place
        self.assertEqual(len(audio.lines), len(sd.media[0].lines))
        dup = audio.with_added_attribute("ssrc", "1 cname:x").with_added_attribute("ssrc", "2 cname:y")
        self.assertEqual(dup.attributes("ssrc"), (b"1 cname:x", b"2 cname:y"))
        self.assertEqual(dup.with_attribute("ssrc", "3 cname:z").attributes("ssrc"), (b"3 cname:z",))
        self.assertEqual(dup.without_attribute("SSRC").attributes("ssrc"), ())
        flag = audio.with_attribute("rtcp-mux")
        self.assertEqual(flag.lines[-1], SdpLine("a", b"rtcp-mux"))
        self.assertRaises(ValueError, audio.with_attribute, "x", b"1\r\na=evil")
        for bad_name in ("", "a b", "rtpmap:0", "x\n"):
            self.assertRaises(ValueError, audio.with_attribute, bad_name, b"1")
        session = sd.with_session_attribute("ice-lite")
        self.assertTrue(session.ice_lite)
        self.assertEqual(session.session[-1], SdpLine("a", b"ice-lite"))
        self.assertFalse(session.without_session_attribute("ice-lite").ice_lite)
        everywhere = session.with_media_attribute(0, "ice-lite").without_attribute("ice-lite")
        self.assertFalse(any(l.attribute_name == "ice-lite" for l in everywhere.all_lines()))

    def test_without_ice(self) -> None:
        sd = parse_sdp(WEBRTC)
        clean = sd.without_ice()
        self.assertFalse(clean.has_ice)
        for line in clean.all_lines():
            self.assertNotIn(line.attribute_name, ICE_ATTRIBUTES)
        # Nothing else is touched.
        kept = [l for l in sd.all_lines() if l.attribute_name not in ICE_ATTRIBUTES]
        self.assertEqual(list(clean.all_lines()), kept)
        self.assertEqual(clean.media[0].mid, "0")

    def test_direction_rewrites(self) -> None:
        sd = parse_sdp(WEBRTC.replace(b"a=msid-semantic", b"a=sendrecv\r\na=msid-semantic"))
        self.assertEqual(sd.session_direction, Direction.SENDRECV)
        one = sd.with_direction(Direction.INACTIVE, 1)
        self.assertEqual(one.direction(1), Direction.INACTIVE)
        self.assertEqual(one.media[1].attributes("recvonly"), ())
        self.assertEqual(one.direction(0), Direction.SENDRECV)
        all_ = sd.with_direction(Direction.SENDONLY)
        self.assertIsNone(all_.session_direction)
        self.assertEqual([all_.direction(i) for i in range(2)], [Direction.SENDONLY] * 2)
        g711 = parse_sdp(G711).with_direction(Direction.RECVONLY, 0)
        self.assertEqual(g711.to_bytes(), G711.replace(b"a=sendrecv", b"a=recvonly"))
        added = parse_sdp(G711.replace(b"a=sendrecv\r\n", b"")).with_direction(Direction.INACTIVE, 0)
        self.assertTrue(added.to_bytes().endswith(b"a=maxptime:40\r\na=inactive\r\n"))

    def test_rtcp_rewrite(self) -> None:
        body = body_of(SHARED / "vendor-messages/chime-INVITE-1.txt")
        sd = parse_sdp(body)
        moved = sd.with_rtcp(0, 40001)
        self.assertEqual(moved.media[0].rtcp, Rtcp(40001))
        self.assertEqual(moved.to_bytes(), body.replace(b"a=rtcp:36489", b"a=rtcp:40001"))
        v6 = sd.with_rtcp(0, 40001, "2001:db8::1")
        self.assertEqual(v6.media[0].rtcp, Rtcp(40001, "IN", "IP6", "2001:db8::1"))
        self.assertIn(b"a=rtcp:40001 IN IP6 2001:db8::1\n", v6.to_bytes())
        self.assertIsNone(sd.media[0].without_rtcp().rtcp)

    def test_codec_filter(self) -> None:
        sd = parse_sdp(WEBRTC)
        kept = sd.with_formats(0, {0, 126, 111})
        audio = kept.media[0]
        self.assertEqual(audio.formats, ("111", "0", "126"))
        self.assertEqual(sorted(audio.rtpmap()), [0, 111, 126])
        self.assertEqual(audio.fmtp(), {"111": "minptime=10;useinbandfec=1"})
        self.assertEqual(audio.attributes("rtcp-fb"), (b"111 transport-cc",))
        self.assertEqual(audio.telephone_events(), (TelephoneEvent(126, 8000),))
        self.assertEqual(kept.media[1], sd.media[1])
        # fmtp of a removed codec goes (63 references 111 but is itself removed).
        self.assertNotIn(b"a=fmtp:63", kept.to_bytes())
        self.assertEqual(sd.media[0].with_formats(["8"]).codecs(), (Codec(8, "PCMA", 8000),))
        self.assertRaises(ValueError, sd.media[0].with_formats, {42})

    def test_crypto_add_remove(self) -> None:
        sd = parse_sdp(SRTP)
        only2 = sd.without_crypto(0, tag=1).without_crypto(0, tag=3)
        self.assertEqual([c.tag for c in only2.media[0].crypto()], [2])
        self.assertEqual(len(only2.media[1].crypto()), 1)
        none = sd.without_crypto()
        self.assertEqual([m.crypto() for m in none.media], [(), ()])
        new = Crypto(4, "AES_CM_128_HMAC_SHA1_80", "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31")
        added = only2.with_crypto(0, new)
        self.assertEqual([c.tag for c in added.media[0].crypto()], [2, 4])
        self.assertEqual(added.media[0].crypto()[1], new)
        self.assertIn(b"a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:WVNf", added.to_bytes())
        self.assertNotIn("WVNfX19z", repr(added) + repr(new))
        # A new crypto line goes right after the existing ones (Teams: before a=rtcp-mux).
        teams = parse_sdp(body_of(SHARED / "vendor-messages/teams-INVITE-1.txt")).with_crypto(0, new)
        types = [l.attribute_name for l in teams.media[0].lines[-4:]]
        self.assertEqual(types, ["crypto", "crypto", "rtcp-mux", "sendrecv"])
        self.assertEqual(teams.media[0].lines[-3].eol, b"\n")  # the body's own line end
        # On a description without crypto the line is appended to the media section.
        g711 = parse_sdp(G711).with_crypto(0, new)
        self.assertEqual(g711.media[0].lines[-1].value[:9], b"crypto:4 ")
        self.assertEqual(parse_sdp(g711.to_bytes()).media[0].crypto(), (new,))

    def test_rewrites_are_new_objects(self) -> None:
        sd = parse_sdp(G711)
        sd.with_media_port(0, 1).bump_version().with_connection("192.0.2.200")
        self.assertEqual(sd.to_bytes(), G711)
        self.assertRaises(Exception, setattr, sd, "media", ())


class OfferAnswerTests(SynchronousTestCase):
    OFFER = crlf(
        """
        v=0
        o=alice 1 1 IN IP4 192.0.2.1
        s=-
        c=IN IP4 192.0.2.1
        t=0 0
        m=audio 4000 RTP/AVP 0 8 101
        a=rtpmap:101 telephone-event/8000
        m=video 5000 RTP/AVP 31
        """
    )
    ANSWER = crlf(
        """
        v=0
        o=bob 7 7 IN IP4 192.0.2.9
        s=-
        c=IN IP4 192.0.2.9
        t=0 0
        m=audio 6000 RTP/AVP 8 96
        a=rtpmap:96 telephone-event/8000
        m=video 0 RTP/AVP 31
        """
    )

    def test_match_by_index(self) -> None:
        offer, answer = parse_sdp(self.OFFER), parse_sdp(self.ANSWER)
        pairs = match_answer(offer, answer)
        self.assertEqual([(o.media, a.media) for o, a in pairs], [("audio", "audio"), ("video", "video")])
        self.assertEqual([a.rejected for _, a in pairs], [False, True])
        # Each side has its own telephone-event PT.
        self.assertEqual(pairs[0][0].telephone_event(8000).payload_type, 101)
        self.assertEqual(pairs[0][1].telephone_event(8000).payload_type, 96)

    def test_count_mismatch(self) -> None:
        offer = parse_sdp(self.OFFER)
        answer = parse_sdp(self.ANSWER.replace(b"m=video 0 RTP/AVP 31\r\n", b""))
        error = self.assertRaises(SipParseError, match_answer, offer, answer)
        self.assertEqual(error.status, 488)

    def test_type_mismatch(self) -> None:
        offer = parse_sdp(self.OFFER)
        answer = parse_sdp(self.ANSWER.replace(b"m=video 0", b"m=text 0"))
        error = self.assertRaises(SipParseError, match_answer, offer, answer)
        self.assertEqual(error.status, 488)

    def test_parse_classmethod(self) -> None:
        self.assertEqual(SessionDescription.parse(self.OFFER), parse_sdp(self.OFFER))
