# -*- test-case-name: tests.test_media_rewrite -*-
"""Tests for sbc.media.core.rewrite: SDP rewriting and offer/answer through the relay."""

from __future__ import annotations

from hypothesis import given
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.engine import MediaError, SideOptions
from sbc.media.core.rewrite import (
    FacingOrigin,
    Negotiator,
    RelayPorts,
    parse,
    relayed_index,
    rewrite_for,
    stream_info,
    with_telephone_event,
)
from sbc.media.core.sdes import parse_crypto_value
from sbc.sip.sdp import ICE_ATTRIBUTES, Direction, TelephoneEvent, parse_sdp
from tests.sdp_strategies import sdp_soup, session_descriptions


def crlf(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines()]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


# Bodies as the vendors send them (tests/vendor_messages and /work/shared/vendor-messages).
TEAMS = crlf("""
    v=0
    o=- 3847293 0 IN IP4 52.115.60.41
    s=session
    c=IN IP4 52.115.60.41
    b=CT:10000000
    t=0 0
    m=audio 50120 RTP/SAVP 111 103 104 9 0 8 106 13 110 112 113 126
    a=rtcp:50121
    a=rtcp-mux
    a=crypto:0 AES_CM_128_HMAC_SHA1_32 inline:nHps3JhzxH8UJfNzmRjXkR0Ts08hHWTvUvgDJ6YP|2^31
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:n57AVptSSABQErt7fm30eGtcVn8RLKXfrKG940/n|2^31
    a=label:main-audio
    a=rtpmap:111 SILK/16000
    a=rtpmap:103 SILK/8000
    a=rtpmap:104 SILK/16000
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:106 telephone-event/16000
    a=rtpmap:13 CN/8000
    a=rtpmap:110 CN/16000
    a=rtpmap:112 CN/8000
    a=rtpmap:113 RED/8000
    a=rtpmap:126 telephone-event/8000
    a=fmtp:126 0-16
    a=ptime:20
    a=sendrecv
""")

CHIME_ICE = crlf("""
    v=0
    o=- 1270113147 1270113147 IN IP4 44.205.172.204
    s=Asterisk
    c=IN IP4 198.51.100.204
    t=0 0
    m=audio 25388 RTP/AVP 0 101
    a=ice-ufrag:62a994f0387b370a01fd6db86aa272a5
    a=ice-pwd:5013deae0dfe51a06340484f367ea602
    a=candidate:Ha00008d 1 UDP 2130706431 10.0.0.141 25388 typ host
    a=candidate:S2ccdaccc 1 UDP 1694498815 198.51.100.204 25388 typ srflx raddr 10.0.0.141 rport 25388
    a=candidate:Ha00008d 2 UDP 2130706430 10.0.0.141 25389 typ host
    a=candidate:S2ccdaccc 2 UDP 1694498814 198.51.100.204 25389 typ srflx raddr 10.0.0.141 rport 25389
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=maxptime:150
    a=sendrecv
""")

ZOOM_GCM = crlf("""
    v=0
    o=Sonus_UAC 201774 318462 IN IP4 162.12.233.60
    s=SIP Media Capabilities
    c=IN IP4 162.12.233.60
    t=0 0
    m=audio 22406 RTP/SAVP 102 9 0 8 18 101
    a=crypto:1 AEAD_AES_256_GCM inline:IXL74hzfZYD5PrAIvXBblPQEvJ++i/Ypb94Y8t56rmSMmXSzrSlEMgZNRsg=
    a=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:ao1wickG/0JxVbEyDy84VqCJruDxrGsy3J1H+GYPQcQ3nOqc87xhjgQL9AEBVA==
    a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:OhVyZeEuBq0Vt62RlN9FXxrSss2zaVEPFgDznlXW
    a=rtpmap:102 opus/48000/2
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:18 G729/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=sendrecv
    a=ptime:20
""")

TWILIO = crlf("""
    v=0
    o=root 1983724511 1983724511 IN IP4 168.86.130.27
    s=Twilio Media Gateway
    c=IN IP4 168.86.130.27
    t=0 0
    m=audio 12610 RTP/AVP 0 8 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=sendrecv
""")

# An agent host's plain answer (no telephone-event, no rtcp-mux).
AGENT_ANSWER = crlf("""
    v=0
    o=agent 77 1 IN IP4 10.9.8.7
    s=-
    c=IN IP4 10.9.8.7
    t=0 0
    m=audio 40000 RTP/AVP 0
    a=rtpmap:0 PCMU/8000
    a=sendrecv
""")

AGENT_ANSWER_TE = AGENT_ANSWER.replace(b"RTP/AVP 0\r\n", b"RTP/AVP 0 101\r\n").replace(
    b"a=sendrecv", b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv"
)

VIDEO_OFFER = crlf("""
    v=0
    o=pbx 5 5 IN IP4 192.0.2.50
    s=-
    t=0 0
    m=audio 30000 RTP/AVP 8 96
    c=IN IP4 192.0.2.50
    a=rtpmap:96 telephone-event/8000
    m=video 30002 RTP/AVP 97
    c=IN IP4 192.0.2.50
    a=rtpmap:97 H264/90000
    m=audio 0 RTP/AVP 0
    c=IN IP4 192.0.2.50
""")

A_PORTS = RelayPorts("203.0.113.5", 10000, 10001)
B_PORTS = RelayPorts("10.0.0.5", 10002, 10003)


def negotiator(a: SideOptions = SideOptions(), b: SideOptions = SideOptions()) -> Negotiator:
    return Negotiator({"a": a, "b": b}, {"a": A_PORTS, "b": B_PORTS}, "4711")


class StreamInfoTests(SynchronousTestCase):
    def test_teams(self) -> None:
        sdp = parse(TEAMS)
        self.assertEqual(relayed_index(sdp), 0)
        info = stream_info(sdp, 0)
        self.assertEqual((info.address, info.rtp_port), ("52.115.60.41", 50120))
        self.assertEqual((info.rtcp_address, info.rtcp_port), ("52.115.60.41", 50121))
        self.assertTrue(info.rtcp_mux)
        self.assertTrue(info.srtp)
        self.assertEqual(len(info.crypto), 2)
        self.assertEqual(info.codec_map()[0], "PCMU")
        self.assertEqual(info.codec_map()[8], "PCMA")
        # Two telephone-event types, neither 101.
        self.assertEqual({e.payload_type for e in info.telephone_events}, {106, 126})
        self.assertEqual(info.direction, Direction.SENDRECV)
        self.assertFalse(info.on_hold)

    def test_keys_not_in_repr(self) -> None:
        info = stream_info(parse(TEAMS), 0)
        self.assertNotIn("n57AVptSSABQErt7fm30eGtcVn8RLKXfrKG940", repr(info))

    def test_non_101_event(self) -> None:
        info = stream_info(parse(VIDEO_OFFER), 0)
        self.assertEqual(info.telephone_event, TelephoneEvent(96, 8000, None))
        self.assertEqual(info.codec_map()[8], "PCMA")

    def test_hold_address_folded(self) -> None:
        held = TWILIO.replace(b"c=IN IP4 168.86.130.27", b"c=IN IP4 0.0.0.0")
        info = stream_info(parse(held), 0)
        self.assertIsNone(info.address)
        self.assertEqual(info.direction, Direction.SENDONLY)
        self.assertTrue(info.on_hold)

    def test_no_relayable_stream(self) -> None:
        sdp = parse(crlf("""
            v=0
            o=- 1 1 IN IP4 192.0.2.1
            s=-
            c=IN IP4 192.0.2.1
            t=0 0
            m=image 4000 udptl t38
            m=audio 0 RTP/AVP 0
        """))
        self.assertIsNone(relayed_index(sdp))

    def test_bad_index(self) -> None:
        self.assertRaises(MediaError, stream_info, parse(TWILIO), 3)


class RewriteTests(SynchronousTestCase):
    def test_addresses_ports_ice(self) -> None:
        sdp = parse(CHIME_ICE)
        out = rewrite_for(sdp, 0, B_PORTS)
        self.assertEqual(out.connection.address, "10.0.0.5")
        self.assertEqual(out.media[0].port, 10002)
        self.assertEqual(out.media[0].rtcp.port, 10003)
        self.assertFalse(out.has_ice)
        body = out.to_bytes()
        for name in ICE_ATTRIBUTES:
            self.assertNotIn(b"a=" + name.encode() + b":", body)
        self.assertNotIn(b"198.51.100.204", body)
        self.assertNotIn(b"10.0.0.141", body)
        # Everything else survives.
        self.assertIn(b"a=maxptime:150", body)
        self.assertIn(b"a=fmtp:101 0-16", body)

    def test_srtp_to_plain(self) -> None:
        out = rewrite_for(parse(TEAMS), 0, B_PORTS)
        self.assertEqual(out.media[0].proto, "RTP/AVP")
        self.assertEqual(out.media[0].crypto(), ())
        self.assertNotIn(b"inline:", out.to_bytes())
        self.assertTrue(out.media[0].rtcp_mux)

    def test_plain_to_srtp(self) -> None:
        ours = b"1 AES_CM_128_HMAC_SHA1_80 inline:" + b"A" * 40
        out = rewrite_for(parse(TWILIO), 0, A_PORTS, crypto=ours)
        self.assertEqual(out.media[0].proto, "RTP/SAVP")
        self.assertEqual(out.media[0].attributes("crypto"), (ours,))

    def test_ipv6(self) -> None:
        out = rewrite_for(parse(TWILIO), 0, RelayPorts("2001:db8::5", 10000, 10001))
        self.assertEqual((out.connection.addrtype, out.connection.address), ("IP6", "2001:db8::5"))
        origin, stamped = FacingOrigin("1", "2001:db8::5").stamp(out)
        self.assertEqual((stamped.origin.addrtype, stamped.origin.address), ("IP6", "2001:db8::5"))
        parse_sdp(stamped.to_bytes())

    def test_other_streams_rejected(self) -> None:
        sdp = parse(VIDEO_OFFER)
        _, out = FacingOrigin("1", "10.0.0.5").stamp(rewrite_for(sdp, 0, B_PORTS))
        self.assertEqual([m.port for m in out.media], [10002, 0, 0])
        self.assertEqual([m.media for m in out.media], ["audio", "video", "audio"])
        # Media-level c= lines point at the relay too.
        self.assertNotIn(b"192.0.2.50", out.to_bytes())

    def test_direction_passes_through(self) -> None:
        for direction in (b"sendonly", b"recvonly", b"inactive"):
            body = TWILIO.replace(b"a=sendrecv", b"a=" + direction)
            out = rewrite_for(parse(body), 0, B_PORTS)
            self.assertEqual(out.direction(0).value.encode(), direction)

    def test_hold_address_becomes_direction(self) -> None:
        body = TWILIO.replace(b"c=IN IP4 168.86.130.27", b"c=IN IP4 0.0.0.0")
        out = rewrite_for(parse(body), 0, B_PORTS)
        self.assertEqual(out.connection.address, "10.0.0.5")
        self.assertEqual(out.direction(0), Direction.SENDONLY)

    def test_dtls_attributes_removed(self) -> None:
        body = TEAMS.replace(b"a=ptime:20", b"a=ptime:20\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass")
        out = rewrite_for(parse(body), 0, B_PORTS)
        self.assertFalse(out.media[0].has_attribute("fingerprint"))
        self.assertFalse(out.media[0].has_attribute("setup"))

    def test_bundle_dropped(self) -> None:
        body = VIDEO_OFFER.replace(b"t=0 0", b"t=0 0\r\na=group:BUNDLE 0 1\r\na=group:LS 0 1")
        out = rewrite_for(parse(body), 0, B_PORTS)
        self.assertEqual(out.attributes("group"), (b"LS 0 1",))

    def test_add_telephone_event(self) -> None:
        section = parse(AGENT_ANSWER).media[0]
        added = with_telephone_event(section, TelephoneEvent(126, 8000))
        self.assertEqual(added.payload_types, (0, 126))
        self.assertEqual(added.telephone_event(8000).payload_type, 126)
        # A taken payload type is not reused.
        taken = with_telephone_event(added, TelephoneEvent(126, 8000))
        self.assertEqual(taken.payload_types, (0, 126, 101))


class OriginTests(SynchronousTestCase):
    def test_versions(self) -> None:
        sdp = parse(TWILIO)
        origin = FacingOrigin("99", "192.0.2.1", version=1)
        origin, first = origin.stamp(sdp)
        self.assertEqual((first.origin.sess_id, first.origin.sess_version), ("99", 1))
        self.assertEqual(first.origin.address, "192.0.2.1")
        origin, same = origin.stamp(sdp)
        self.assertEqual(same.origin.sess_version, 1)  # unchanged description: same version
        origin, changed = origin.stamp(sdp.with_media_port(0, 5000))
        self.assertEqual(changed.origin.sess_version, 2)
        origin, again = origin.stamp(sdp)
        self.assertEqual(again.origin.sess_version, 3)
        self.assertEqual(again.origin.sess_id, "99")


class NegotiatorTests(SynchronousTestCase):
    def test_teams_srtp_to_plain_agent(self) -> None:
        n = negotiator(a=SideOptions(srtp="required", dtmf=True), b=SideOptions(srtp="off"))
        offer = parse_sdp(n.offer("a", TEAMS))
        self.assertEqual(offer.media[0].proto, "RTP/AVP")
        self.assertNotIn(b"inline:", offer.to_bytes())
        self.assertEqual(offer.connection.address, "10.0.0.5")
        self.assertEqual(offer.media[0].port, 10002)
        self.assertEqual(n.pending, "a")
        answer = parse_sdp(n.answer("b", AGENT_ANSWER))
        media = answer.media[0]
        self.assertEqual(media.proto, "RTP/SAVP")
        self.assertEqual(answer.connection.address, "203.0.113.5")
        self.assertEqual(media.port, 10000)
        self.assertTrue(media.rtcp_mux)  # Teams offered it; the relay accepts it
        (crypto,) = media.attributes("crypto")
        tag, ours = parse_crypto_value(crypto)
        # RFC 4568: the answer keeps the tag and suite of the offer line chosen (the first usable).
        self.assertEqual((tag, ours.suite), (0, "AES_CM_128_HMAC_SHA1_32"))
        a, b = n.sides["a"], n.sides["b"]
        self.assertEqual(a.inbound.suite, "AES_CM_128_HMAC_SHA1_32")
        self.assertEqual(a.outbound, ours)
        self.assertNotEqual(a.inbound.key, ours.key)
        self.assertFalse(b.srtp)
        self.assertEqual((b.info.address, b.info.rtp_port), ("10.9.8.7", 40000))
        # The agent did not answer telephone-event: the relay adds one toward Teams so it
        # keeps sending RFC 4733 (a side with dtmf on), using Teams' own 8 kHz number.
        self.assertEqual(media.telephone_event(8000).payload_type, 126)
        self.assertIn(126, {e.payload_type for e in a.telephone_events()})

    def test_plain_pbx_to_srtp_agent(self) -> None:
        n = negotiator(a=SideOptions(), b=SideOptions(srtp="required"))
        offer = parse_sdp(n.offer("a", TWILIO))
        self.assertEqual(offer.media[0].proto, "RTP/SAVP")
        (crypto,) = offer.media[0].attributes("crypto")
        tag, ours = parse_crypto_value(crypto)
        self.assertEqual((tag, ours.suite), (1, "AES_CM_128_HMAC_SHA1_80"))
        agent_key = b"1 AES_CM_128_HMAC_SHA1_80 inline:OhVyZeEuBq0Vt62RlN9FXxrSss2zaVEPFgDznlXW"
        srtp_answer = AGENT_ANSWER.replace(b"RTP/AVP", b"RTP/SAVP").replace(
            b"a=sendrecv", b"a=sendrecv\r\na=crypto:" + agent_key
        )
        answer = parse_sdp(n.answer("b", srtp_answer))
        self.assertEqual(answer.media[0].proto, "RTP/AVP")
        self.assertEqual(answer.media[0].crypto(), ())
        b = n.sides["b"]
        self.assertTrue(b.srtp)
        self.assertEqual(b.outbound, ours)
        self.assertEqual(b.inbound, parse_crypto_value(agent_key)[1])
        self.assertFalse(n.sides["a"].srtp)

    def test_gcm_offer(self) -> None:
        n = negotiator(a=SideOptions(srtp="optional"))
        n.offer("a", ZOOM_GCM)
        answer = parse_sdp(n.answer("b", AGENT_ANSWER))
        (crypto,) = answer.media[0].attributes("crypto")
        tag, ours = parse_crypto_value(crypto)
        self.assertEqual((tag, ours.suite), (1, "AEAD_AES_256_GCM"))
        self.assertEqual(len(ours.key), 44)

    def test_policy_mismatches(self) -> None:
        n = negotiator(a=SideOptions(srtp="off"))
        e = self.assertRaises(MediaError, n.offer, "a", TEAMS)
        self.assertEqual(e.status, 488)
        self.assertNotIn("inline", e.reason)
        n = negotiator(a=SideOptions(srtp="required"))
        self.assertEqual(self.assertRaises(MediaError, n.offer, "a", TWILIO).status, 488)
        # An SRTP answer to a plain offer, and a plain answer to an SRTP offer.
        n = negotiator()
        n.offer("a", TWILIO)
        bad = AGENT_ANSWER.replace(b"RTP/AVP", b"RTP/SAVP")
        self.assertEqual(self.assertRaises(MediaError, n.answer, "b", bad).status, 488)
        n = negotiator(b=SideOptions(srtp="required"))
        n.offer("a", TWILIO)
        self.assertEqual(self.assertRaises(MediaError, n.answer, "b", AGENT_ANSWER).status, 488)

    def test_refused_offer_changes_nothing(self) -> None:
        n = negotiator(a=SideOptions(srtp="off"))
        n.offer("a", TWILIO)
        n.answer("b", AGENT_ANSWER)
        before = dict(n.sides)
        self.assertRaises(MediaError, n.offer, "a", TEAMS)
        self.assertEqual(n.sides, before)
        self.assertIsNotNone(n.pending)  # the completed exchange, not the refused one

    def test_refused_reoffer_changes_nothing(self) -> None:
        n = negotiator(a=SideOptions(srtp="optional"))
        n.offer("a", TEAMS)
        n.answer("b", AGENT_ANSWER)
        before = dict(n.sides)
        # a re-offers a new port and a new key; b refuses it (the B2BUA never calls answer).
        moved = TEAMS.replace(b"m=audio 50120", b"m=audio 50200").replace(
            b"nHps3JhzxH8UJfNzmRjXkR0Ts08hHWTvUvgDJ6YP", b"OhVyZeEuBq0Vt62RlN9FXxrSss2zaVEPFgDznlXW"
        )
        n.offer("a", moved)
        self.assertEqual(n.sides, before)
        # Accepted this time: now it applies.
        n.answer("b", AGENT_ANSWER)
        self.assertEqual(n.sides["a"].info.rtp_port, 50200)
        self.assertNotEqual(n.sides["a"].inbound, before["a"].inbound)
        self.assertEqual(n.sides["a"].outbound, before["a"].outbound)  # our key stays

    def test_answer_without_offer(self) -> None:
        n = negotiator()
        self.assertRaises(MediaError, n.answer, "b", AGENT_ANSWER)
        n.offer("a", TWILIO)
        self.assertRaises(MediaError, n.answer, "a", TWILIO)

    def test_late_offer(self) -> None:
        n = negotiator()
        offer = parse_sdp(n.offer("b", AGENT_ANSWER_TE))
        self.assertEqual(offer.connection.address, "203.0.113.5")
        self.assertEqual(offer.media[0].port, 10000)
        answer = parse_sdp(n.answer("a", TWILIO))
        self.assertEqual(answer.connection.address, "10.0.0.5")
        self.assertEqual(answer.media[0].port, 10002)
        self.assertEqual((n.sides["a"].info.address, n.sides["a"].info.rtp_port), ("168.86.130.27", 12610))

    def test_repeated_answers_and_origin(self) -> None:
        n = negotiator()
        first = parse_sdp(n.offer("a", TWILIO))
        early = parse_sdp(n.answer("b", AGENT_ANSWER))
        final = parse_sdp(n.answer("b", AGENT_ANSWER))  # the 2xx repeats the 183's SDP
        self.assertEqual(early.origin, final.origin)
        # The agent moving its port is hidden from a: same description, same version.
        moved = parse_sdp(n.answer("b", AGENT_ANSWER.replace(b"40000", b"40002")))
        self.assertEqual(moved.origin, final.origin)
        self.assertEqual(n.sides["b"].info.rtp_port, 40002)
        # A codec change is not.
        pcma = AGENT_ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8").replace(b"0 PCMU", b"8 PCMA")
        changed = parse_sdp(n.answer("b", pcma))
        self.assertEqual(changed.origin.sess_version, final.origin.sess_version + 1)
        # Toward b: one origin across offers; a re-offer with a change bumps the version.
        reoffer = parse_sdp(n.offer("a", TWILIO.replace(b"a=sendrecv", b"a=sendonly")))
        self.assertEqual(reoffer.origin.sess_id, first.origin.sess_id)
        self.assertEqual(reoffer.origin.sess_version, first.origin.sess_version + 1)
        self.assertEqual(reoffer.direction(0), Direction.SENDONLY)
        self.assertFalse(n.on_hold)  # a re-offer applies at its answer
        n.answer("b", AGENT_ANSWER.replace(b"a=sendrecv", b"a=recvonly"))
        self.assertTrue(n.on_hold)
        resume = n.offer("a", TWILIO)
        self.assertTrue(n.on_hold)  # b still says recvonly until it answers
        n.answer("b", AGENT_ANSWER)
        self.assertFalse(n.on_hold)
        self.assertEqual(parse_sdp(resume).direction(0), Direction.SENDRECV)

    def test_reoffer_keeps_our_key(self) -> None:
        n = negotiator(a=SideOptions(srtp="required"))
        n.offer("a", TEAMS)
        first = parse_sdp(n.answer("b", AGENT_ANSWER)).media[0].attributes("crypto")
        n.offer("a", TEAMS)
        second = parse_sdp(n.answer("b", AGENT_ANSWER)).media[0].attributes("crypto")
        self.assertEqual(first, second)

    def test_rejected_streams(self) -> None:
        n = negotiator()
        offer = parse_sdp(n.offer("a", VIDEO_OFFER))
        self.assertEqual([m.port for m in offer.media], [10002, 0, 0])
        answer_body = crlf("""
            v=0
            o=agent 1 1 IN IP4 10.9.8.7
            s=-
            c=IN IP4 10.9.8.7
            t=0 0
            m=audio 40000 RTP/AVP 8 96
            a=rtpmap:96 telephone-event/8000
            m=video 0 RTP/AVP 97
            m=audio 0 RTP/AVP 0
        """)
        answer = parse_sdp(n.answer("b", answer_body))
        self.assertEqual([m.port for m in answer.media], [10000, 0, 0])

    def test_short_answer_padded(self) -> None:
        n = negotiator()
        n.offer("a", VIDEO_OFFER)
        answer = parse_sdp(n.answer("b", AGENT_ANSWER))  # one m= line for three
        self.assertEqual([m.media for m in answer.media], ["audio", "video", "audio"])
        self.assertEqual([m.port for m in answer.media], [10000, 0, 0])
        too_many = AGENT_ANSWER + b"m=video 0 RTP/AVP 97\r\nm=audio 0 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\n"
        self.assertEqual(self.assertRaises(MediaError, n.answer, "b", too_many).status, 488)

    def test_answer_rejecting_audio(self) -> None:
        n = negotiator()
        n.offer("a", TWILIO)
        rejected = AGENT_ANSWER.replace(b"m=audio 40000", b"m=audio 0")
        answer = parse_sdp(n.answer("b", rejected))
        self.assertEqual(answer.media[0].port, 0)
        self.assertTrue(n.on_hold)  # nothing flows: no media timeout

    def test_garbage(self) -> None:
        n = negotiator()
        for body in (b"", b"hello", b"v=0\r\n", b"v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\n"):
            self.assertRaises(MediaError, n.offer, "a", body)

    @given(sdp_soup())
    def test_soup_raises_only_media_error(self, body: bytes) -> None:
        n = negotiator(a=SideOptions(srtp="optional"), b=SideOptions(dtmf=True))
        for call in (lambda: n.offer("a", body), lambda: n.answer("b", body)):
            try:
                out = call()
            except MediaError as e:
                self.assertIn(e.status, (488, 500))
            else:
                parse_sdp(out)

    @given(session_descriptions())
    def test_rewrite_properties(self, sdp) -> None:
        index = relayed_index(sdp)
        try:
            out = rewrite_for(sdp, index, B_PORTS)
        except MediaError:
            return
        reparsed = parse_sdp(out.to_bytes())
        self.assertEqual(len(reparsed.media), len(sdp.media))
        self.assertFalse(reparsed.has_ice)
        for i, section in enumerate(reparsed.media):
            self.assertEqual(section.crypto(), ())
            if i == index:
                self.assertEqual(section.port, 10002)
                self.assertEqual(reparsed.connection_for(i).address, "10.0.0.5")
            else:
                self.assertEqual(section.port, 0)


class EngineValuesTests(SynchronousTestCase):
    def test_side_options_validated(self) -> None:
        self.assertEqual(SideOptions().srtp, "off")
        self.assertRaises(ValueError, SideOptions, srtp="sometimes")
        self.assertRaises(ValueError, SideOptions, vad_sensitivity=1.5)
        self.assertEqual(SideOptions(srtp="required", vad_sensitivity=1.0).vad_sensitivity, 1.0)

    def test_media_error(self) -> None:
        e = MediaError(503, "no media ports left")
        self.assertEqual((e.status, e.reason, str(e)), (503, "no media ports left", "503 no media ports left"))

    def test_other_side(self) -> None:
        from sbc.media.core.engine import other_side

        self.assertEqual((other_side("a"), other_side("b")), ("b", "a"))


class KeyLeakTests(SynchronousTestCase):
    """A side's SDES key never reaches the other side: what crosses carries the relay's own."""

    def test_no_key_crosses(self) -> None:
        import re

        key = re.compile(rb"inline:([A-Za-z0-9+/=]+)")
        bodies = (TEAMS, ZOOM_GCM, TWILIO, CHIME_ICE, VIDEO_OFFER)
        answer_srtp = AGENT_ANSWER.replace(b"RTP/AVP", b"RTP/SAVP").replace(
            b"a=sendrecv",
            b"a=sendrecv\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:OhVyZeEuBq0Vt62RlN9FXxrSss2zaVEPFgDznlXW",
        )
        checked = 0
        for body in bodies:
            for a_policy in ("off", "optional", "required"):
                for b_policy in ("off", "optional", "required"):
                    n = negotiator(a=SideOptions(srtp=a_policy), b=SideOptions(srtp=b_policy))
                    try:
                        offer = n.offer("a", body)
                    except MediaError:
                        continue
                    theirs = set(key.findall(body))
                    self.assertFalse(theirs & set(key.findall(offer)))
                    answer_body = answer_srtp if b"RTP/SAVP" in offer else AGENT_ANSWER
                    try:
                        answer = n.answer("b", answer_body)
                    except MediaError:
                        continue
                    self.assertFalse(set(key.findall(answer_body)) & set(key.findall(answer)))
                    checked += 1
        self.assertGreater(checked, 10)
